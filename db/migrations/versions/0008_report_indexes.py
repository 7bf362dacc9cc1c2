"""Covering indexes for the reports, and each order's units.

Each index holds the columns its report reads (INCLUDE), so PostgreSQL answers
from the index alone (an index-only scan) instead of visiting every table row.
`orders.units` (units of every line, cancelled ones left out) lets the sales
reports sum an order without reading its lines; existing orders are counted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name, table, key columns, included columns
INDEXES = [
    (
        "ix_orders_report",
        "orders",
        ["created_at"],
        [
            "id",
            "status",
            "channel",
            "currency",
            "subtotal_minor",
            "total_minor",
            "units",
            "cancel_reason",
        ],
    ),
    (
        "ix_order_lines_report",
        "order_lines",
        ["order_id"],
        ["sku", "quantity", "total_minor"],
    ),
    (
        "ix_shipments_report",
        "shipments",
        ["shipped_at"],
        ["order_id", "warehouse", "carrier", "delivered_at"],
    ),
    (
        "ix_returns_report",
        "returns",
        ["created_at"],
        ["reason", "currency", "status", "refund_minor"],
    ),
]


def upgrade() -> None:
    op.add_column(
        "orders", sa.Column("units", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(
        "UPDATE orders SET units = counted.units FROM ("
        " SELECT order_id, sum(quantity) AS units FROM order_lines GROUP BY order_id"
        ") counted WHERE counted.order_id = orders.id"
    )
    # Built without locking out writes: a live shop keeps taking orders.
    with op.get_context().autocommit_block():
        for name, table, columns, included in INDEXES:
            op.create_index(
                name,
                table,
                columns,
                postgresql_include=included,
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    op.drop_column("orders", "units")
