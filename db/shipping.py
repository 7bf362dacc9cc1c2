"""Shipment tables of the read model, written by the shipment workflow."""

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Sequence, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column

package_code_seq = Sequence("package_code_seq", metadata=Base.metadata)


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (
        Index(
            "ix_shipments_report",
            "shipped_at",
            postgresql_include=["order_id", "warehouse", "carrier", "delivered_at"],
        ),
    )

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    warehouse: Mapped[str] = mapped_column(ForeignKey("warehouses.code"))
    status: Mapped[str] = mapped_column(String(32), index=True)
    package_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    weight_grams: Mapped[int | None]
    carrier: Mapped[str | None] = mapped_column(String(32))
    tracking_number: Mapped[str | None] = mapped_column(String(64), index=True)
    label_ref: Mapped[str | None] = mapped_column(String(128))
    shipped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tracking_status: Mapped[str | None] = mapped_column(String(32))
    last_movement_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    late: Mapped[bool] = mapped_column(server_default=text("false"), index=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class ShipmentLine(Base):
    __tablename__ = "shipment_lines"

    shipment_id: Mapped[str] = mapped_column(
        ForeignKey("shipments.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int]
