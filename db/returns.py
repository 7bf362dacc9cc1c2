"""Returns in the read model, written by the return workflow at each step."""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (
        Index(
            "ix_returns_report",
            "created_at",
            postgresql_include=["reason", "currency", "status", "refund_minor"],
        ),
    )

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    order_id: Mapped[str] = mapped_column(Uuid(as_uuid=False), index=True)
    rma: Mapped[str] = mapped_column(String(48), unique=True)
    workflow_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    refund_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The whole return as the workflow last reported it (models.returns.ReturnState).
    state: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()
