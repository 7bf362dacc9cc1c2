"""Outbound webhooks: which order events subscribers can receive, and the
contracts of subscriptions and deliveries."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

# Timeline events published to subscribers, by the name subscribers see. Most
# keep their timeline name; two take the name integrators expect.
PUBLISHED: dict[str, str] = {
    "order.received": "order.created",
    "payment.refunded": "refund.issued",
    **{
        name: name
        for name in (
            "order.confirmed",
            "order.awaiting_payment",
            "order.awaiting_stock",
            "order.held",
            "order.released",
            "order.amended",
            "order.lines_cancelled",
            "order.cancelled",
            "order.failed",
            "order.in_fulfilment",
            "order.delivered",
            "order.completed",
            "payment.link_sent",
            "payment.captured",
            "payment.voided",
            "shipment.packed",
            "shipment.shipped",
            "shipment.delivered",
            "shipment.lost",
            "shipment.late",
            "return.opened",
            "return.approved",
            "return.rejected",
            "return.authorized",
            "return.received",
            "return.closed",
            "return.expired",
        )
    },
}
EVENT_TYPES = frozenset(PUBLISHED.values())
ALL_EVENTS = "*"

DeliveryStatus = Literal["pending", "delivered", "failed"]


def _known_types(types: list[str]) -> list[str]:
    unknown = sorted(set(types) - EVENT_TYPES - {ALL_EVENTS})
    if unknown:
        raise ValueError(
            f"unknown event type {', '.join(unknown)}; GET /v1/webhooks/events "
            "lists them, or use *"
        )
    return sorted(set(types))


EventTypes = Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES))]


class SubscriptionIn(BaseModel):
    url: AnyHttpUrl = Field(
        description="where events are POSTed; https in production",
        examples=["https://crm.example.com/hooks/oms"],
    )
    event_types: EventTypes = Field(
        description='event types to receive, or ["*"] for all',
        examples=[["order.created", "shipment.shipped"]],
    )
    description: str | None = Field(default=None, max_length=200)
    channel: str | None = Field(
        default=None,
        max_length=64,
        description="only this channel's orders (an integrator's own channel "
        "always); all channels if left out",
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, types: list[str]) -> list[str]:
        return _known_types(types)

    @field_validator("url")
    @classmethod
    def _length(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(url)) > 2000:
            raise ValueError("the URL is longer than 2000 characters")
        return url


class SubscriptionPatch(BaseModel):
    url: AnyHttpUrl | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = Field(
        default=None,
        description="false pauses deliveries (they wait); true resumes them",
    )

    @field_validator("event_types")
    @classmethod
    def _types(cls, types: list[str] | None) -> list[str] | None:
        return None if types is None else _known_types(types)


class SubscriptionPublic(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    channel: str | None
    active: bool
    failures: int = Field(description="failed attempts in a row")
    retry_at: datetime | None = Field(
        description="while set, nothing is sent before this time (back-off)"
    )
    last_error: str | None
    created_by: str
    created_at: datetime


class SubscriptionCreated(SubscriptionPublic):
    secret: str = Field(
        description="signs every delivery (OMS-Signature); shown only now"
    )


class DeliveryPublic(BaseModel):
    id: int
    subscription_id: str
    event_id: str = Field(description="stable across retries and replays")
    event_type: str
    order_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any] | None = None


class EventCatalogue(BaseModel):
    event_types: list[str]
