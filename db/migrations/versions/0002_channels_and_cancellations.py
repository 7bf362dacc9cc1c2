"""Channels and their policies, stock movements, cancellations, holds, partial voids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:21:12.777354
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("out_of_stock_policy", sa.String(length=16), nullable=False),
        sa.Column("backorder_seconds", sa.Double(), nullable=False),
        sa.Column("ask_customer_seconds", sa.Double(), nullable=False),
        sa.Column("payment_link_seconds", sa.Double(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "out_of_stock_policy IN ('reject', 'backorder', 'ask_customer')",
            name=op.f("ck_channels_out_of_stock_policy_known"),
        ),
        sa.CheckConstraint(
            "backorder_seconds > 0 AND ask_customer_seconds > 0 "
            "AND payment_link_seconds > 0",
            name=op.f("ck_channels_timeouts_positive"),
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_channels")),
    )
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse", sa.String(length=32), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("on_hand_after", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "delta <> 0", name=op.f("ck_stock_movements_delta_not_zero")
        ),
        sa.ForeignKeyConstraint(
            ["sku"], ["products.sku"], name=op.f("fk_stock_movements_sku_products")
        ),
        sa.ForeignKeyConstraint(
            ["warehouse"],
            ["warehouses.code"],
            name=op.f("fk_stock_movements_warehouse_warehouses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
    )
    op.create_index(
        op.f("ix_stock_movements_sku"), "stock_movements", ["sku"], unique=False
    )
    op.add_column(
        "orders",
        sa.Column(
            "refunded_minor", sa.BigInteger(), server_default="0", nullable=False
        ),
    )
    op.add_column(
        "orders", sa.Column("cancel_reason", sa.String(length=32), nullable=True)
    )
    op.add_column(
        "orders", sa.Column("cancel_note", sa.String(length=500), nullable=True)
    )
    op.add_column(
        "orders", sa.Column("hold_reason", sa.String(length=200), nullable=True)
    )
    op.add_column(
        "order_lines",
        sa.Column(
            "cancelled_quantity", sa.Integer(), server_default="0", nullable=False
        ),
    )
    op.add_column(
        "payments",
        sa.Column("voided_minor", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_payments_voided_within_authorized"),
        "payments",
        "0 <= voided_minor AND captured_minor + voided_minor <= authorized_minor",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_payments_voided_within_authorized"), "payments", type_="check"
    )
    op.drop_column("payments", "voided_minor")
    op.drop_column("order_lines", "cancelled_quantity")
    op.drop_column("orders", "hold_reason")
    op.drop_column("orders", "cancel_note")
    op.drop_column("orders", "cancel_reason")
    op.drop_column("orders", "refunded_minor")
    op.drop_index(op.f("ix_stock_movements_sku"), table_name="stock_movements")
    op.drop_table("stock_movements")
    op.drop_table("channels")
