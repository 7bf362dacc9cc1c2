"""Customer cards, each order's customer, and the cards of orders placed before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The id expression is imported, not copied: every card's id was made with it,
# so it can never change without a migration of its own.
from db.customers import customer_id_sql, normalised_email_sql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One card per customer id: name from the latest order, phone from the latest
# order that has one, each distinct address once in the order first seen.
BACKFILL = f"""
INSERT INTO customers
    (id, email, name, phone, addresses, first_order_at, last_order_at)
SELECT latest.customer_id, latest.email, latest.customer_name, phones.phone,
       seen.addresses, seen.first_at, seen.last_at
FROM (
    SELECT DISTINCT ON (customer_id) customer_id, customer_name,
           {normalised_email_sql("customer_email")} AS email
    FROM orders
    ORDER BY customer_id, created_at DESC, id DESC
) AS latest
JOIN (
    SELECT customer_id, min(first_at) AS first_at, max(last_at) AS last_at,
           jsonb_agg(shipping_address ORDER BY first_at) AS addresses
    FROM (
        SELECT customer_id, shipping_address,
               min(created_at) AS first_at, max(created_at) AS last_at
        FROM orders
        GROUP BY customer_id, shipping_address
    ) AS addresses
    GROUP BY customer_id
) AS seen USING (customer_id)
LEFT JOIN (
    SELECT DISTINCT ON (customer_id) customer_id,
           nullif(regexp_replace(customer_phone, '[^0-9+]', '', 'g'), '') AS phone
    FROM orders
    WHERE customer_phone IS NOT NULL
    ORDER BY customer_id, created_at DESC, id DESC
) AS phones USING (customer_id)
"""


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid(as_uuid=False), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column(
            "addresses",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
    )
    op.create_index(op.f("ix_customers_phone"), "customers", ["phone"])
    # Computed by PostgreSQL for every order, past and future (this rewrites
    # the orders table once).
    op.add_column(
        "orders",
        sa.Column(
            "customer_id",
            sa.Uuid(as_uuid=False),
            sa.Computed(customer_id_sql("customer_email"), persisted=True),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_orders_customer_created", "orders", ["customer_id", "created_at", "id"]
    )
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_orders_customer_created", table_name="orders")
    op.drop_column("orders", "customer_id")
    op.drop_index(op.f("ix_customers_phone"), table_name="customers")
    op.drop_table("customers")
