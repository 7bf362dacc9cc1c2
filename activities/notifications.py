"""Customer notifications: an order event becomes an email, SMS or messenger
message, sent at most once.

Each message is claimed in the database (one row per event and medium)
before the notifier is called. A retried step, on this worker or another one
after a crash, finds the claim and sends nothing: a customer may miss a
message when a worker dies in the middle of sending it, but never gets one
twice. Notifications never fail an order: a refusal is recorded and left.
"""

import uuid
from string import Formatter
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from db.channels import Channel
from db.notifications import Notification, SandboxMessage
from db.orders import Order, OrderEvent
from db.returns import Return
from db.shipping import Shipment
from models.notifications import (
    DEFAULT_LANGUAGE,
    Medium,
    NotifyCustomer,
    Template,
    templates_for,
)


class Message(Protocol):
    medium: Medium
    recipient: str
    subject: str | None
    body: str


class Notifier(Protocol):
    """Sends one message; returns the provider's reference for it. Raises
    when the provider refuses it."""

    name: str

    async def send(self, notification_id: str, message: Message) -> str: ...


class SandboxNotifier:
    """Sends nothing: stores each message it would send, for tests and
    `oms dev` (sandbox_messages)."""

    name = "sandbox"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def send(self, notification_id: str, message: Message) -> str:
        async with self._engine.begin() as conn:
            stored = await conn.execute(
                insert(SandboxMessage)
                .values(
                    notification_id=notification_id,
                    medium=message.medium,
                    recipient=message.recipient,
                    subject=message.subject,
                    body=message.body,
                )
                .returning(SandboxMessage.id)
            )
        return f"sandbox-{stored.scalar_one()}"


class _Draft:
    def __init__(
        self, medium: Medium, recipient: str, template: Template, fields: dict[str, str]
    ) -> None:
        self.medium = medium
        self.recipient = recipient
        self.subject = (
            None if template.subject is None else _fill(template.subject, fields)
        )
        self.body = _fill(template.body, fields)


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


def _fill(text: str, fields: dict[str, str]) -> str:
    return Formatter().vformat(text, (), _Defaulting(fields))


class NotificationActivities:
    def __init__(self, engine: AsyncEngine, notifier: Notifier | None = None) -> None:
        self._engine = engine
        self._notifier = notifier or SandboxNotifier(engine)

    @activity.defn
    async def notify_customer(self, request: NotifyCustomer) -> list[str]:
        """Tell the customer about an order event on every medium it has a
        template and an address for; returns the media sent this time."""
        drafts = await self._drafts(request)
        sent: list[str] = []
        for language, draft in drafts:
            claimed = await self._claim(request, language, draft)
            if claimed is None:
                activity.logger.info(
                    "order %s: %s %s already handled, not sent again",
                    request.order_id,
                    request.event_type,
                    draft.medium,
                )
                continue
            try:
                reference = await self._notifier.send(claimed, draft)
            except Exception as error:  # noqa: BLE001 - any refusal is final
                await self._finish(claimed, status="failed", error=str(error)[:500])
                activity.logger.warning(
                    "order %s: %s by %s failed, not retried: %s",
                    request.order_id,
                    request.event_type,
                    draft.medium,
                    error,
                )
                continue
            await self._finish(claimed, status="sent", provider_ref=reference)
            sent.append(draft.medium)
            activity.logger.info(
                "order %s: customer told of %s by %s",
                request.order_id,
                request.event_type,
                draft.medium,
            )
        return sent

    async def _drafts(self, request: NotifyCustomer) -> list[tuple[str, _Draft]]:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        Order.number,
                        Order.channel,
                        Order.customer_name,
                        Order.customer_email,
                        Order.customer_phone,
                        Order.currency,
                        Channel.language,
                    )
                    .outerjoin(Channel, Channel.code == Order.channel)
                    .where(Order.id == request.order_id)
                )
            ).first()
            event = (
                await conn.execute(
                    select(OrderEvent.message, OrderEvent.data).where(
                        OrderEvent.id == request.event_id
                    )
                )
            ).first()
            if row is None or event is None:
                # The read model is written before this step: a missing row
                # means a broken database, worth a retry.
                raise RuntimeError(
                    f"order {request.order_id} or its event {request.event_id} "
                    "is not in the read model"
                )
            data: dict[str, Any] = event.data or {}
            fields = {
                "name": row.customer_name,
                "number": row.number,
                "channel": row.channel,
                "message": event.message,
                "url": str(data.get("url", "")),
            }
            if "amount" in data:
                fields["amount"] = f"{data['amount']} {row.currency}"
            if "shipment" in data:
                shipment = (
                    await conn.execute(
                        select(Shipment.carrier, Shipment.tracking_number).where(
                            Shipment.number == data["shipment"]
                        )
                    )
                ).first()
                if shipment is not None:
                    fields["carrier"] = shipment.carrier or "-"
                    fields["tracking"] = shipment.tracking_number or "-"
            if "return" in data:
                fields["rma"] = str(data["return"])
                state = (
                    await conn.execute(
                        select(Return.state).where(Return.rma == data["return"])
                    )
                ).scalar_one_or_none()
                label = (state or {}).get("label") or {}
                fields["carrier"] = label.get("carrier", "-")
                fields["tracking"] = label.get("tracking_number", "-")
        language = row.language or DEFAULT_LANGUAGE
        addresses = {
            Medium.EMAIL: row.customer_email,
            Medium.SMS: row.customer_phone,
        }
        return [
            (language, _Draft(medium, address, template, fields))
            for medium, template in templates_for(request.event_type, language).items()
            if (address := addresses.get(medium))
        ]

    async def _claim(
        self, request: NotifyCustomer, language: str, draft: _Draft
    ) -> str | None:
        """Record the message as being sent; None if it was claimed before."""
        notification_id = str(
            uuid.uuid5(uuid.UUID(request.event_id), f"notify:{draft.medium}")
        )
        async with self._engine.begin() as conn:
            claimed = await conn.execute(
                insert(Notification)
                .values(
                    id=notification_id,
                    event_id=request.event_id,
                    medium=draft.medium,
                    order_id=request.order_id,
                    event_type=request.event_type,
                    language=language,
                    recipient=draft.recipient,
                    subject=draft.subject,
                    body=draft.body[:2000],
                    status="sending",
                )
                .on_conflict_do_nothing()
                .returning(Notification.id)
            )
            return claimed.scalar_one_or_none()

    async def _finish(self, notification_id: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(Notification)
                .where(Notification.id == notification_id)
                .values(
                    sent_at=func.now() if values.get("status") == "sent" else None,
                    **values,
                )
            )
