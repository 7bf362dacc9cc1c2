"""API keys: stored as hashes, never in clear, each with a role (and a channel)."""

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "role IN ('integrator', 'support', 'warehouse', 'admin', 'viewer')",
            name="role_known",
        ),
        CheckConstraint(
            "(role = 'integrator') = (channel IS NOT NULL)",
            name="integrators_have_a_channel",
        ),
        # A name is taken only while its key is live.
        Index(
            "uq_api_keys_live_name",
            "name",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the key: keys are 256 random bits, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_column()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """Signatures already accepted: a replayed delivery is recognised."""

    __tablename__ = "webhook_deliveries"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = created_at_column()
