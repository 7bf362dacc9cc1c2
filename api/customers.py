"""Customer cards: contact, addresses, recent orders, value and return rate.

Staff (support, admin, viewer) see the whole card. An integrator sees the
customer as its own channel knows them: contact, addresses and figures come
from that channel's orders only, and a customer with no order there is 404,
exactly like an unknown one, so customers cannot be probed across channels.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import ColumnElement, Row, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.access import Caller, Reader
from api.deps import ConnectionDep
from api.errors import ProblemDetails, invalid, not_found
from api.read_model import order_summary
from db.customers import Customer
from db.orders import Order
from db.returns import Return
from models.catalog import Page
from models.customer_views import (
    CustomerCard,
    CustomerSummary,
    CustomerValue,
    ReturnRate,
)
from models.customers import customer_url, normalise_email, normalise_phone
from models.money import Money
from models.orders import Address, Email, OrderStatus, Phone
from models.returns import LIVE_RETURN_STATUSES

router = APIRouter(tags=["customers"])

CustomerId = Annotated[uuid.UUID, Path(description="the customer's id (UUID)")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown customer"}
}
DELIVERED = (OrderStatus.DELIVERED, OrderStatus.COMPLETED)
NOT_PLACED = (OrderStatus.CANCELLED, OrderStatus.FAILED)
LOOKUP_LIMIT = 20
VALUE_DESCRIPTION = """
`value` is per currency (amounts in different currencies are never added
up): `ordered` is the total of the orders that were neither cancelled nor
failed; `lifetime_value` is what was captured minus what was refunded, i.e.
the money the customer actually left with us. `returns.rate` is the share of
delivered orders with a return that was not rejected or expired.
An integrator's key sees only its channel's orders in all of these.
"""


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str | None
    addresses: list[dict[str, Any]]
    first_order_at: datetime
    last_order_at: datetime


@router.get(
    "/customers/{customer_id}", responses=NOT_FOUND, description=VALUE_DESCRIPTION
)
async def get_customer(
    customer_id: CustomerId,
    conn: ConnectionDep,
    caller: Reader,
    limit: Annotated[
        int, Query(ge=1, le=100, description="how many recent orders to show")
    ] = 10,
) -> CustomerCard:
    """A customer's card: contact, addresses, recent orders, value, returns."""
    customer = (
        await conn.execute(select(Customer).where(Customer.id == str(customer_id)))
    ).first()
    contact = None if customer is None else await _contact(conn, customer, caller)
    if customer is None or contact is None:
        raise not_found("customer", str(customer_id))
    scope = _orders_of(customer.id, caller)
    recent = await conn.execute(
        select(Order)
        .where(*scope)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    value = await _value(conn, scope)
    return CustomerCard(
        id=customer.id,
        email=customer.email,
        name=contact.name,
        phone=contact.phone,
        addresses=[Address.model_validate(a) for a in contact.addresses],
        first_order_at=contact.first_order_at,
        last_order_at=contact.last_order_at,
        order_count=sum(v.orders for v in value),
        recent_orders=[order_summary(row) for row in recent],
        orders_url=f"/v1/orders?customer_id={customer.id}",
        value=value,
        returns=await _return_rate(conn, scope),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


@router.get("/customers")
async def find_customers(
    conn: ConnectionDep,
    caller: Reader,
    email: Annotated[Email | None, Query(description="matched ignoring case")] = None,
    phone: Annotated[
        Phone | None, Query(description="matched on its digits and leading '+'")
    ] = None,
) -> Page[CustomerSummary]:
    """Customers by email (at most one) or by their latest phone number."""
    if (email is None) == (phone is None):
        raise invalid("email", "give either email or phone", also="phone")
    query = select(Customer).order_by(Customer.last_order_at.desc()).limit(LOOKUP_LIMIT)
    if email is not None:
        query = query.where(Customer.email == normalise_email(email))
    if phone is not None:
        query = query.where(Customer.phone == normalise_phone(phone))
        if caller.channel is not None:
            # The number must have been given on one of the channel's orders.
            query = query.where(
                exists().where(
                    *_orders_of(Customer.id, caller),
                    func.regexp_replace(Order.customer_phone, "[^0-9+]", "", "g")
                    == normalise_phone(phone),
                )
            )
    items = []
    for customer in await conn.execute(query):
        contact = await _contact(conn, customer, caller)
        if contact is not None:
            items.append(
                CustomerSummary(
                    id=customer.id,
                    email=customer.email,
                    name=contact.name,
                    phone=contact.phone,
                    first_order_at=contact.first_order_at,
                    last_order_at=contact.last_order_at,
                    url=customer_url(customer.id),
                )
            )
    return Page(items=items)


def _orders_of(customer_id: Any, caller: Caller) -> list[ColumnElement[bool]]:
    """Conditions on `orders`: the customer's orders this caller may see."""
    scope = [Order.customer_id == customer_id]
    if caller.channel is not None:
        scope.append(Order.channel == caller.channel)
    return scope


async def _contact(
    conn: AsyncConnection, customer: Row[Any], caller: Caller
) -> Contact | None:
    """The card's contact part; for an integrator, from its channel's orders
    (None if the customer never ordered there)."""
    if caller.channel is None:
        return Contact(
            name=customer.name,
            phone=customer.phone,
            addresses=customer.addresses,
            first_order_at=customer.first_order_at,
            last_order_at=customer.last_order_at,
        )
    scope = _orders_of(customer.id, caller)
    newest = (Order.created_at.desc(), Order.id.desc())
    latest = (
        await conn.execute(
            select(Order.customer_name).where(*scope).order_by(*newest).limit(1)
        )
    ).scalar()
    if latest is None:
        return None
    phone = (
        await conn.execute(
            select(Order.customer_phone)
            .where(*scope, Order.customer_phone.is_not(None))
            .order_by(*newest)
            .limit(1)
        )
    ).scalar()
    first_seen = func.min(Order.created_at)
    addresses = (
        await conn.execute(
            select(Order.shipping_address, first_seen, func.max(Order.created_at))
            .where(*scope)
            .group_by(Order.shipping_address)
            .order_by(first_seen)
        )
    ).all()
    return Contact(
        name=latest,
        phone=None if phone is None else normalise_phone(phone) or None,
        addresses=[row[0] for row in addresses],
        first_order_at=addresses[0][1],
        last_order_at=max(row[2] for row in addresses),
    )


async def _value(
    conn: AsyncConnection, scope: list[ColumnElement[bool]]
) -> list[CustomerValue]:
    placed = Order.status.not_in(NOT_PLACED)
    rows = await conn.execute(
        select(
            Order.currency,
            func.count(),
            func.coalesce(func.sum(Order.total_minor).filter(placed), 0),
            func.sum(Order.captured_minor),
            func.sum(Order.refunded_minor),
        )
        .where(*scope)
        .group_by(Order.currency)
        .order_by(Order.currency)
    )
    return [
        CustomerValue(
            currency=currency,
            orders=count,
            ordered=Money.of(int(ordered), currency),
            captured=Money.of(int(captured), currency),
            refunded=Money.of(int(refunded), currency),
            lifetime_value=Money.of(int(captured) - int(refunded), currency),
        )
        for currency, count, ordered, captured, refunded in rows
    ]


async def _return_rate(
    conn: AsyncConnection, scope: list[ColumnElement[bool]]
) -> ReturnRate:
    delivered = Order.status.in_(DELIVERED)
    returned = exists().where(
        Return.order_id == Order.id, Return.status.in_(LIVE_RETURN_STATUSES)
    )
    row = (
        await conn.execute(
            select(
                func.count().filter(delivered), func.count().filter(delivered, returned)
            ).where(*scope)
        )
    ).one()
    delivered_orders, returned_orders = int(row[0]), int(row[1])
    rate = (
        None
        if delivered_orders == 0
        else str(
            (Decimal(returned_orders) / Decimal(delivered_orders)).quantize(
                Decimal("0.0001")
            )
        )
    )
    return ReturnRate(
        delivered_orders=delivered_orders, returned_orders=returned_orders, rate=rate
    )
