"""Imports every table module so `Base.metadata` is complete (for Alembic)."""

from db import (
    access,
    catalog,
    channels,
    customers,
    inventory,
    notifications,
    orders,
    outbox,
    payments,
    returns,
    shipping,
)
from db.base import Base

metadata = Base.metadata

__all__ = [
    "access",
    "catalog",
    "channels",
    "customers",
    "inventory",
    "metadata",
    "notifications",
    "orders",
    "outbox",
    "payments",
    "returns",
    "shipping",
]
