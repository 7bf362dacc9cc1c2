"""Order tables: the intake that makes creation idempotent, and the read model.

`order_intake` maps a channel's idempotency key and external order id to one
order id and keeps the priced order, so a repeated request starts nothing new.
`orders`, `order_lines` and `order_events` are written by activities with
idempotent upserts and serve lists, search and the timeline.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Sequence,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column
from db.customers import customer_id_sql
from db.outbox import publish
from models.outbox import PUBLISHED

order_number_seq = Sequence("order_number_seq", metadata=Base.metadata)


class OrderIntake(Base):
    __tablename__ = "order_intake"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        UniqueConstraint("channel", "idempotency_key"),
    )

    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Set once the order's workflow was started: a resent order must never
    # start it again, even after Temporal's retention removed its history.
    workflow_started: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[datetime] = created_at_column()


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_created", "created_at", "id"),
        Index("ix_orders_status_created", "status", "created_at"),
        Index("ix_orders_channel_created", "channel", "created_at"),
        Index("ix_orders_customer_created", "customer_id", "created_at", "id"),
        # Reports read these columns from the index alone (migration 0008).
        Index(
            "ix_orders_report",
            "created_at",
            postgresql_include=[
                "id",
                "status",
                "channel",
                "currency",
                "subtotal_minor",
                "total_minor",
                "units",
                "cancel_reason",
            ],
        ),
    )

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    payment_status: Mapped[str] = mapped_column(String(32))
    payment_method: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(String(64))
    failure_detail: Mapped[str | None] = mapped_column(String(500))
    customer_email: Mapped[str] = mapped_column(String(254), index=True)
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_phone: Mapped[str | None] = mapped_column(String(32))
    # The customer's card (db.customers), derived from the email by PostgreSQL.
    customer_id: Mapped[str] = mapped_column(
        Uuid(as_uuid=False),
        Computed(customer_id_sql("customer_email"), persisted=True),
    )
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONB)
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    shipping_minor: Mapped[int] = mapped_column(BigInteger)
    # The delivery option the customer chose (models.shipping.DeliveryChoice).
    delivery: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    # Units of every line (cancelled ones left out), kept with the totals so
    # that sales reports need not read every line of a million orders.
    units: Mapped[int] = mapped_column(server_default="0")
    authorized_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    captured_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cancel_reason: Mapped[str | None] = mapped_column(String(32))
    cancel_note: Mapped[str | None] = mapped_column(String(500))
    hold_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = updated_at_column()


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        Index(
            "ix_order_lines_report",
            "order_id",
            postgresql_include=["sku", "quantity", "total_minor"],
        ),
    )

    order_id: Mapped[str] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int]
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    cancelled_quantity: Mapped[int] = mapped_column(server_default="0")


class OrderEvent(Base):
    """One entry of an order's timeline: who did what, when, from where."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "at", "seq"),)

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    recorded_at: Mapped[datetime] = created_at_column()


async def append_event(
    conn: AsyncConnection,
    *,
    order_id: str,
    event_id: str,
    at: datetime,
    type: str,
    message: str,
    actor: str = "system",
    data: dict[str, Any] | None = None,
) -> None:
    """Add one entry to an order's timeline; a repeated event id adds nothing.

    Events subscribers can receive go into the outbox in the same transaction.
    """
    await conn.execute(
        insert(OrderEvent)
        .values(
            id=event_id,
            order_id=order_id,
            at=at,
            type=type,
            actor=actor[:200],
            message=message[:500],
            data=data or {},
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    public = PUBLISHED.get(type)
    if public is not None:
        await publish(
            conn,
            event_id=event_id,
            type=public,
            order_id=order_id,
            at=at,
            message=message[:500],
            data=data or {},
        )
