"""Warehouses as data for the broker: region, capabilities, safety stock;
channels limited to warehouses and to a number of shipments per order;
shipments' tracking status, late flag and label; orders' delivery choice.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("warehouses", sa.Column("region", sa.String(64), nullable=True))
    for name, default in (
        ("ships_parcels", "true"),
        ("serves_pickup", "false"),
        ("express", "false"),
    ):
        op.add_column(
            "warehouses",
            sa.Column(
                name, sa.Boolean(), server_default=sa.text(default), nullable=False
            ),
        )
    op.add_column(
        "stock_levels",
        sa.Column("safety_stock", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_stock_levels_safety_stock_not_negative"),
        "stock_levels",
        "safety_stock >= 0",
    )
    op.add_column(
        "channels",
        sa.Column("warehouses", postgresql.ARRAY(sa.String(32)), nullable=True),
    )
    op.add_column(
        "channels",
        sa.Column("max_shipments", sa.Integer(), server_default="3", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_channels_max_shipments_positive"), "channels", "max_shipments >= 1"
    )
    op.add_column(
        "shipments", sa.Column("tracking_status", sa.String(32), nullable=True)
    )
    op.add_column(
        "shipments",
        sa.Column("last_movement_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "shipments",
        sa.Column(
            "late", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.create_index(op.f("ix_shipments_late"), "shipments", ["late"])
    op.add_column("shipments", sa.Column("label_ref", sa.String(128), nullable=True))
    op.add_column(
        "orders",
        sa.Column("delivery", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("orders", "delivery")
    op.drop_index(op.f("ix_shipments_late"), "shipments")
    for name in ("label_ref", "late", "last_movement_at", "tracking_status"):
        op.drop_column("shipments", name)
    op.drop_constraint(op.f("ck_channels_max_shipments_positive"), "channels")
    op.drop_column("channels", "max_shipments")
    op.drop_column("channels", "warehouses")
    op.drop_constraint(
        op.f("ck_stock_levels_safety_stock_not_negative"), "stock_levels"
    )
    op.drop_column("stock_levels", "safety_stock")
    for name in ("express", "serves_pickup", "ships_parcels", "region"):
        op.drop_column("warehouses", name)
