"""Outbound webhooks: the outbox of order events, subscribers and deliveries.

Every timeline event that subscribers may hear about is written to
`outbox_events` by `publish`, in the transaction that records the change, and
fanned out there to one `outbound_deliveries` row per subscription that wants
it. The dispatcher (workers/outbox.py) delivers those rows later, so an order
never waits for a subscriber.
"""

import json
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    String,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column


class OutboxEvent(Base):
    """One event as subscribers receive it; its id orders the deliveries."""

    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_created", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()


class Subscription(Base):
    """A subscriber's URL, the events it wants and the secret it checks."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)))
    # NULL: every channel's orders; else only that channel's.
    channel: Mapped[str | None] = mapped_column(String(64))
    # Sealed with the payload codec's current key when keys are configured
    # (workers/codec.py `seal_text`, bound to the subscription's id).
    secret: Mapped[str] = mapped_column(String(400))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    # Consecutive failed attempts; while `retry_at` is ahead, nothing is sent
    # to the subscriber, so a dead one costs one attempt per back-off step.
    failures: Mapped[int] = mapped_column(server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class Delivery(Base):
    """One event for one subscriber: pending until acknowledged (delivered)
    or given up (failed)."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index(
            "ix_outbound_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_outbound_deliveries_order_pending",
            "subscription_id",
            "order_id",
            "event_id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_outbound_deliveries_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(
        ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True
    )
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False))
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


_PUBLISH = text(
    """
    WITH subscribers AS (
        SELECT s.id
        FROM webhook_subscriptions s
        WHERE s.active
          AND (CAST(:type AS text) = ANY(s.event_types) OR '*' = ANY(s.event_types))
          AND (s.channel IS NULL OR s.channel = (
              SELECT o.channel FROM orders o WHERE o.id = CAST(:order_id AS uuid)))
    ), event AS (
        -- Kept only if someone is to receive it.
        INSERT INTO outbox_events (event_id, type, order_id, occurred_at, payload)
        SELECT CAST(:event_id AS uuid), CAST(:type AS text), CAST(:order_id AS uuid),
               CAST(:at AS timestamptz),
               jsonb_build_object(
                   'id', CAST(CAST(:event_id AS uuid) AS text),
                   'type', CAST(:type AS text),
                   'occurred_at', CAST(:at_text AS text),
                   'order', (
                       SELECT jsonb_build_object(
                           'id', o.id, 'number', o.number, 'channel', o.channel,
                           'external_id', o.external_id, 'status', o.status,
                           'payment_status', o.payment_status)
                       FROM orders o WHERE o.id = CAST(:order_id AS uuid)),
                   'message', CAST(:message AS text),
                   'data', CAST(:data AS jsonb))
        WHERE EXISTS (SELECT 1 FROM subscribers)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING id
    )
    INSERT INTO outbound_deliveries (subscription_id, event_id, order_id)
    SELECT subscribers.id, event.id, CAST(:order_id AS uuid)
    FROM event, subscribers
    """
)


async def publish(
    conn: AsyncConnection,
    *,
    event_id: str,
    type: str,
    order_id: str,
    at: datetime,
    message: str,
    data: dict[str, Any],
) -> None:
    """Add an event to the outbox and queue it for every subscriber of its
    type, in the caller's transaction; a repeated event id adds nothing, nor
    does an event nobody subscribes to."""
    await conn.execute(
        _PUBLISH,
        {
            "event_id": event_id,
            "type": type,
            "order_id": order_id,
            "at": at,
            "at_text": at.isoformat(),
            "message": message,
            "data": json.dumps(data, default=str),
        },
    )
