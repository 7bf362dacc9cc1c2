"""Imports every table module so `Base.metadata` is complete (for Alembic)."""

from db import (
    access,
    catalog,
    channels,
    inventory,
    orders,
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
    "inventory",
    "metadata",
    "orders",
    "payments",
    "returns",
    "shipping",
]
