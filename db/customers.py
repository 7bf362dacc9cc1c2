"""The customer card: one row per normalised email, written with every order.

`record_customer` runs in the transaction that records an order: it creates
the card or brings it up to date, and gives the same result however often it
runs for the same order, in whatever order orders arrive. Totals are not kept
here; the API adds them up from the customer's orders when the card is read.

`normalised_email_sql` and `customer_id_sql` are the SQL twins of
models.customers' functions: PostgreSQL computes `orders.customer_id` with
them, and migration 0007 fills the cards of orders placed before it.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Uuid, case, func, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, created_at_column, updated_at_column
from models.customers import (
    ID_PREFIX,
    customer_id_for,
    normalise_email,
    normalise_phone,
)

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def normalised_email_sql(column: str) -> str:
    """SQL for models.customers.normalise_email of `column`."""
    return f"translate(btrim({column}), '{_UPPER}', '{_UPPER.lower()}')"


def customer_id_sql(column: str) -> str:
    """SQL for models.customers.customer_id_for of `column` (only immutable
    functions, so that it can compute a generated column)."""
    digest = f"md5('{ID_PREFIX}' || {normalised_email_sql(column)})"
    # RFC 9562 bits: version 3 in the 13th hex digit, variant 10xx in the 17th.
    variant = (
        f"substr('89ab89ab89ab89ab', "
        f"strpos('0123456789abcdef', substr({digest}, 17, 1)), 1)"
    )
    return (
        f"(substr({digest}, 1, 12) || '3' || substr({digest}, 14, 3) || "
        f"{variant} || substr({digest}, 18))::uuid"
    )


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(Uuid(as_uuid=False), primary_key=True)
    # Normalised (models.customers.normalise_email): the key orders match by.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Normalised to '+' and digits, so a lookup finds it however it is typed.
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    # Every shipping address seen (models.orders.Address), once each, in the
    # order they were first recorded.
    addresses: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    first_order_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = updated_at_column()


async def record_customer(
    conn: AsyncConnection,
    *,
    email: str,
    name: str,
    phone: str | None,
    address: dict[str, Any],
    placed_at: datetime,
) -> str:
    """Create or update the card of the customer who placed an order then.

    The name and phone of the latest order win (a phone only if one was
    given); an address is added if the card does not have it yet.
    """
    new = insert(Customer).values(
        id=customer_id_for(email),
        email=normalise_email(email),
        name=name,
        phone=None if phone is None else normalise_phone(phone) or None,
        addresses=[address],
        first_order_at=placed_at,
        last_order_at=placed_at,
    )
    seen = new.excluded
    latest = seen.last_order_at >= Customer.last_order_at
    stored = await conn.execute(
        new.on_conflict_do_update(
            index_elements=[Customer.email],
            set_={
                "name": case((latest, seen.name), else_=Customer.name),
                "phone": case(
                    (latest, func.coalesce(seen.phone, Customer.phone)),
                    else_=func.coalesce(Customer.phone, seen.phone),
                ),
                "addresses": case(
                    (Customer.addresses.contains(seen.addresses), Customer.addresses),
                    else_=Customer.addresses.concat(seen.addresses),
                ),
                "first_order_at": func.least(
                    Customer.first_order_at, seen.first_order_at
                ),
                "last_order_at": func.greatest(
                    Customer.last_order_at, seen.last_order_at
                ),
                "updated_at": func.now(),
            },
        ).returning(Customer.id)
    )
    return str(stored.scalar_one())


async def add_address(
    conn: AsyncConnection, customer_id: str, address: dict[str, Any]
) -> None:
    """Add an address to the customer's card, unless it is there already."""
    await conn.execute(
        update(Customer)
        .where(
            Customer.id == customer_id,
            ~Customer.addresses.contains([address]),
        )
        .values(addresses=Customer.addresses.concat([address]), updated_at=func.now())
    )
