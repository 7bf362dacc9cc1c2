"""Imports every table module so `Base.metadata` is complete (for Alembic)."""

from db import catalog, channels, inventory, orders, payments, shipping
from db.base import Base

metadata = Base.metadata

__all__ = [
    "catalog",
    "channels",
    "inventory",
    "metadata",
    "orders",
    "payments",
    "shipping",
]
