"""Payments: authorize, capture, void, refund and payment links, in minor units."""

import uuid
from datetime import datetime

from pydantic import BaseModel

_PAYMENT_IDS = uuid.UUID("6f1c7a52-52f4-4d8e-9b8e-3f0b7f1e2a10")


def payment_id_for(idempotency_key: str) -> str:
    """The id of the payment made with this idempotency key (deterministic)."""
    return str(uuid.uuid5(_PAYMENT_IDS, idempotency_key))


class AuthorizePayment(BaseModel):
    order_id: str
    method: str
    token: str | None
    amount_minor: int
    currency: str
    idempotency_key: str
    event_id: str
    at: datetime
    # An amendment's new authorization: until it replaces the old one, the
    # order's payment status stays what the old one says.
    replacing: bool = False


class Authorization(BaseModel):
    payment_id: str
    provider: str
    provider_ref: str | None
    amount_minor: int


class CapturePayment(BaseModel):
    order_id: str
    payment_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    event_id: str
    at: datetime
    # What the money is for, for the timeline ("shipment SO-000001-1").
    purpose: str | None = None


class Captured(BaseModel):
    captured_minor: int
    provider_ref: str | None


class VoidPayment(BaseModel):
    """Void an authorization, or only `amount_minor` of it.

    `authorization_key` finds an authorization the gateway made but this
    system never recorded (the answer was lost before a cancel).
    """

    order_id: str
    payment_id: str
    idempotency_key: str
    event_id: str
    at: datetime
    reason: str
    authorization_key: str | None = None
    amount_minor: int | None = None
    # When found only at the gateway: what was asked for, to record it.
    currency: str | None = None
    authorized_minor: int | None = None
    # A replaced authorization (an amendment re-authorized the order): the
    # order's payment status follows the new one, not this void.
    replaced: bool = False


class Voided(BaseModel):
    provider_ref: str | None
    voided_minor: int = 0


class RefundPayment(BaseModel):
    order_id: str
    payment_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    event_id: str
    at: datetime
    reason: str


class Refunded(BaseModel):
    refunded_minor: int
    provider_ref: str | None


class CreatePaymentLink(BaseModel):
    order_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    expires_at: datetime
    event_id: str
    at: datetime


class PaymentLink(BaseModel):
    payment_id: str
    link_id: str
    url: str
    expires_at: datetime


class RecordLinkPayment(BaseModel):
    order_id: str
    payment_id: str
    amount_minor: int
    currency: str
    notification_id: str
    event_id: str
    at: datetime


class ExpirePaymentLink(BaseModel):
    order_id: str
    payment_id: str
    event_id: str
    at: datetime
    reason: str
