"""Customer notifications: one row per event and medium, claimed before it
is sent, so no event reaches a customer twice; and what the sandbox
notifier would have sent."""

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("event_id", "medium"),)

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    event_id: Mapped[str] = mapped_column(Uuid(as_uuid=False))
    medium: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(2000))
    # sending: claimed, the notifier called or about to be; sent; failed: the
    # notifier refused or broke, and it is not tried again (at most once).
    status: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SandboxMessage(Base):
    """A message the sandbox notifier 'sent': nothing leaves the machine."""

    __tablename__ = "sandbox_messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    notification_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    medium: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(String(2000))
    sent_at: Mapped[datetime] = created_at_column()
