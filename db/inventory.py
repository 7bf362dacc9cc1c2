"""Inventory tables: warehouses, stock levels and reservations.

The CHECK on stock_levels makes overselling impossible at the database: a
reservation that would take `reserved` above `on_hand` fails, whatever the code
above it believes. Reservations are unique per order line and warehouse, so an
activity that runs twice reserves once.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column


class Confirmation(StrEnum):
    """Who confirms picking and packing in a warehouse."""

    AUTOMATIC = "automatic"
    MANUAL = "manual"


class ReservationState(StrEnum):
    RESERVED = "reserved"
    RELEASED = "released"
    SHIPPED = "shipped"


class Warehouse(Base):
    __tablename__ = "warehouses"
    __table_args__ = (
        CheckConstraint(
            "confirmation IN ('automatic', 'manual')", name="confirmation_known"
        ),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(default=100)
    confirmation: Mapped[str] = mapped_column(
        String(16), default=Confirmation.AUTOMATIC.value
    )
    # Capabilities: the broker sources parcels only from warehouses that ship.
    ships_parcels: Mapped[bool] = mapped_column(server_default=text("true"))
    serves_pickup: Mapped[bool] = mapped_column(server_default=text("false"))
    express: Mapped[bool] = mapped_column(server_default=text("false"))


class StockLevel(Base):
    __tablename__ = "stock_levels"
    __table_args__ = (
        CheckConstraint(
            "0 <= reserved AND reserved <= on_hand", name="reserved_within_on_hand"
        ),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
    )

    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), primary_key=True)
    warehouse: Mapped[str] = mapped_column(
        ForeignKey("warehouses.code"), primary_key=True
    )
    on_hand: Mapped[int]
    reserved: Mapped[int] = mapped_column(default=0)
    # Units kept back from what can be promised (shop floor, damaged, buffer).
    safety_stock: Mapped[int] = mapped_column(server_default="0")
    updated_at: Mapped[datetime] = updated_at_column()


class Reservation(Base):
    __tablename__ = "reservations"
    __table_args__ = (
        UniqueConstraint("order_id", "line", "warehouse"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "state IN ('reserved', 'released', 'shipped')", name="state_known"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    line: Mapped[int]
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"))
    quantity: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default=ReservationState.RESERVED)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class StockMovement(Base):
    """Every change of on-hand stock made by people: who, how much, why."""

    __tablename__ = "stock_movements"
    __table_args__ = (CheckConstraint("delta <> 0", name="delta_not_zero"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"), index=True)
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"))
    delta: Mapped[int]
    on_hand_after: Mapped[int]
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()
