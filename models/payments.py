"""Payments: authorize, capture and void messages, amounts in minor units."""

from datetime import datetime

from pydantic import BaseModel


class AuthorizePayment(BaseModel):
    order_id: str
    method: str
    token: str
    amount_minor: int
    currency: str
    idempotency_key: str
    event_id: str
    at: datetime


class Authorization(BaseModel):
    payment_id: str
    provider: str
    provider_ref: str
    amount_minor: int


class CapturePayment(BaseModel):
    order_id: str
    payment_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    event_id: str
    at: datetime


class Captured(BaseModel):
    captured_minor: int
    provider_ref: str


class VoidPayment(BaseModel):
    order_id: str
    payment_id: str
    idempotency_key: str
    event_id: str
    at: datetime
    reason: str


class Voided(BaseModel):
    provider_ref: str
