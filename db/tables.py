"""Imports every table module so `Base.metadata` is complete (for Alembic)."""

from db import catalog, inventory, orders, payments, shipping
from db.base import Base

metadata = Base.metadata

__all__ = ["catalog", "inventory", "metadata", "orders", "payments", "shipping"]
