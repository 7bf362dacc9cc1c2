"""Returns and the channels' return policies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("order_id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("rma", sa.String(length=48), nullable=False),
        sa.Column("workflow_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refund_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint("rma", name=op.f("uq_returns_rma")),
    )
    for column in ("order_id", "channel", "status", "reason"):
        op.create_index(op.f(f"ix_returns_{column}"), "returns", [column])
    op.add_column(
        "channels", sa.Column("return_window_seconds", sa.Float(), nullable=True)
    )
    op.add_column(
        "channels",
        sa.Column(
            "return_review_reasons", postgresql.ARRAY(sa.String(32)), nullable=True
        ),
    )
    op.add_column(
        "channels", sa.Column("return_goods_seconds", sa.Float(), nullable=True)
    )
    op.add_column(
        "channels", sa.Column("refund_delivery", sa.String(16), nullable=True)
    )
    op.add_column("channels", sa.Column("exchange_ships", sa.String(16), nullable=True))


def downgrade() -> None:
    for column in (
        "exchange_ships",
        "refund_delivery",
        "return_goods_seconds",
        "return_review_reasons",
        "return_window_seconds",
    ):
        op.drop_column("channels", column)
    op.drop_table("returns")
