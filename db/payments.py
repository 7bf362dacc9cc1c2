"""Payment tables: one row per payment, one event per money movement.

Every authorize, capture, void and refund is a payment_events row whose
idempotency key is unique, so a retried activity records it once.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column


class PaymentEventKind(StrEnum):
    AUTHORIZE = "authorize"
    DECLINE = "decline"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(
            "0 <= captured_minor AND captured_minor <= authorized_minor",
            name="captured_within_authorized",
        ),
        CheckConstraint(
            "0 <= refunded_minor AND refunded_minor <= captured_minor",
            name="refunded_within_captured",
        ),
        CheckConstraint(
            "0 <= voided_minor AND captured_minor + voided_minor <= authorized_minor",
            name="voided_within_authorized",
        ),
    )

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    method: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(32))
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    authorized_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    captured_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    voided_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


class PaymentEvent(Base):
    __tablename__ = "payment_events"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('authorize', 'decline', 'capture', 'void', 'refund')",
            name="kind_known",
        ),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
