"""Order intake: price a new order and give it an id exactly once.

The same `Idempotency-Key`, or the same channel and external order id, finds
the order already taken in, so a client that retries after a timeout gets its
order back instead of a second one. The intake row keeps the priced order, so
if the API died between taking an order in and starting its workflow, the
retry starts it from what was stored.
"""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from api.errors import FieldError, Problem
from db.catalog import Product, ProductPrice
from db.channels import Channel
from db.orders import OrderIntake, order_number_seq
from models.money import to_minor
from models.orders import (
    Address,
    Customer,
    OrderCreate,
    OrderLine,
    OrderLineIn,
    OrderPolicy,
    PaymentDetails,
    PlaceOrder,
)

# Bound on any amount, so totals stay far inside PostgreSQL's bigint.
MAX_AMOUNT_MINOR = 10**15


@dataclass(frozen=True)
class Intake:
    order: PlaceOrder
    created: bool
    workflow_started: bool


def request_hash(body: OrderCreate) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class QuotedLine:
    """A requested line with its catalogue name and the prices it could have."""

    sku: str
    name: str
    quantity: int
    explicit_minor: int | None
    catalogue_minor: int | None


async def quote_lines(
    conn: AsyncConnection,
    lines: Sequence[OrderLineIn],
    currency: str,
    *,
    require_price: bool,
) -> list[QuotedLine]:
    """Look the lines' SKUs up in the catalogue and parse the channel's prices.

    Unknown SKUs answer 404; unparsable, missing (when `require_price`) or
    oversized prices answer 422, each naming its field.
    """
    skus = {line.sku for line in lines}
    rows = await conn.execute(
        select(Product.sku, Product.name, ProductPrice.amount_minor)
        .outerjoin(
            ProductPrice,
            (ProductPrice.sku == Product.sku) & (ProductPrice.currency == currency),
        )
        .where(Product.sku.in_(skus))
    )
    catalogue = {row.sku: row for row in rows}
    unknown = [
        FieldError(field=f"lines[{i}].sku", message=f"unknown SKU {line.sku!r}")
        for i, line in enumerate(lines)
        if line.sku not in catalogue
    ]
    if unknown:
        raise Problem(
            404,
            "sku-not-found",
            "Unknown SKU",
            ", ".join(sorted(skus - catalogue.keys())),
            errors=unknown,
        )

    quoted, errors = [], []
    for i, line in enumerate(lines):
        field = f"lines[{i}].unit_price"
        product = catalogue[line.sku]
        try:
            explicit = (
                None if line.unit_price is None else to_minor(line.unit_price, currency)
            )
        except ValueError as error:
            errors.append(FieldError(field=field, message=str(error)))
            continue
        price = explicit if explicit is not None else product.amount_minor
        if price is None and require_price:
            errors.append(
                FieldError(
                    field=field,
                    message=f"{line.sku} has no catalogue price in {currency}; "
                    "send unit_price",
                )
            )
            continue
        if price is not None and price * line.quantity > MAX_AMOUNT_MINOR:
            errors.append(
                FieldError(
                    field=field,
                    message="the line's total is beyond what the system accepts",
                )
            )
            continue
        quoted.append(
            QuotedLine(
                line.sku, product.name, line.quantity, explicit, product.amount_minor
            )
        )
    total = sum(
        (q.explicit_minor or q.catalogue_minor or 0) * q.quantity for q in quoted
    )
    if not errors and total > MAX_AMOUNT_MINOR:
        errors.append(
            FieldError(
                field="lines", message="the order's total is beyond what it accepts"
            )
        )
    if errors:
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            errors=errors,
            detail="invalid fields: " + ", ".join(e.field for e in errors),
        )
    return quoted


async def price_lines(conn: AsyncConnection, body: OrderCreate) -> list[OrderLine]:
    """Price every line from the channel's price or the catalogue's."""
    quoted = await quote_lines(conn, body.lines, body.currency, require_price=True)
    lines = []
    for number, line in enumerate(quoted, start=1):
        price = line.explicit_minor
        if price is None:
            price = line.catalogue_minor
        assert price is not None
        lines.append(
            OrderLine(
                line=number,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=price,
                total_minor=price * line.quantity,
            )
        )
    return lines


async def channel_policy(conn: AsyncConnection, channel: str) -> OrderPolicy:
    """The channel's rules for its orders; the defaults for unknown channels."""
    row = (
        await conn.execute(select(Channel.__table__).where(Channel.code == channel))
    ).first()
    if row is None:
        return OrderPolicy()
    return OrderPolicy(
        out_of_stock=row.out_of_stock_policy,
        backorder_seconds=row.backorder_seconds,
        ask_customer_seconds=row.ask_customer_seconds,
        payment_link_seconds=row.payment_link_seconds,
        max_shipments=row.max_shipments,
        warehouses=row.warehouses,
    )


async def take_in(
    conn: AsyncConnection,
    body: OrderCreate,
    idempotency_key: str | None,
    *,
    created_by: str | None = None,
) -> Intake:
    """Find the order this request already created, or create it; then commit."""
    fingerprint = request_hash(body)
    existing = await _find(conn, body, idempotency_key)
    if existing is None:
        order = await _new_order(conn, body, created_by)
        inserted = await conn.execute(
            insert(OrderIntake)
            .values(
                order_id=order.order_id,
                number=order.number,
                channel=body.channel,
                external_id=body.external_id,
                idempotency_key=idempotency_key,
                request_hash=fingerprint,
                payload=order.model_dump(mode="json"),
            )
            .on_conflict_do_nothing()
            .returning(OrderIntake.order_id)
        )
        if inserted.first() is not None:
            await conn.commit()
            return Intake(order, created=True, workflow_started=False)
        # A concurrent request with the same key won the race: use its order.
        await conn.rollback()
        existing = await _find(conn, body, idempotency_key)
        assert existing is not None
    if idempotency_key is not None and existing.idempotency_key == idempotency_key:
        if existing.request_hash != fingerprint:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency key reused with a different request",
                f"key {idempotency_key!r} belongs to order {existing.number}",
            )
    await conn.commit()
    return Intake(
        PlaceOrder.model_validate(existing.payload),
        created=False,
        workflow_started=existing.workflow_started,
    )


async def mark_started(conn: AsyncConnection, order_id: str) -> None:
    await conn.execute(
        update(OrderIntake)
        .where(OrderIntake.order_id == order_id)
        .values(workflow_started=True)
    )


async def _find(
    conn: AsyncConnection, body: OrderCreate, idempotency_key: str | None
) -> OrderIntake | None:
    matches = []
    if body.external_id is not None:
        matches.append(OrderIntake.external_id == body.external_id)
    if idempotency_key is not None:
        matches.append(OrderIntake.idempotency_key == idempotency_key)
    if not matches:
        return None
    row = (
        await conn.execute(
            select(OrderIntake.__table__)
            .where(OrderIntake.channel == body.channel, or_(*matches))
            .order_by(OrderIntake.created_at)
            .limit(1)
        )
    ).first()
    return None if row is None else OrderIntake(**row._mapping)


async def _new_order(
    conn: AsyncConnection, body: OrderCreate, created_by: str | None
) -> PlaceOrder:
    lines = await price_lines(conn, body)
    number = (await conn.execute(order_number_seq.next_value())).scalar_one()
    subtotal = sum(line.total_minor for line in lines)
    shipping = 0  # delivery pricing arrives with the broker; free until then
    return PlaceOrder(
        order_id=str(uuid.uuid4()),
        number=f"SO-{number:06d}",
        channel=body.channel,
        external_id=body.external_id,
        customer=Customer.model_validate(body.customer.model_dump()),
        shipping_address=Address.model_validate(body.shipping_address.model_dump()),
        currency=body.currency,
        lines=lines,
        subtotal_minor=subtotal,
        shipping_minor=shipping,
        total_minor=subtotal + shipping,
        payment=PaymentDetails.model_validate(body.payment.model_dump()),
        policy=await channel_policy(conn, body.channel),
        created_by=created_by,
        placed_at=datetime.now(UTC),
    )


async def find_by_reference(conn: AsyncConnection, reference: str) -> PlaceOrder | None:
    """An order by its id or its number (SO-000123), as it was taken in."""
    try:
        condition = OrderIntake.order_id == str(uuid.UUID(reference))
    except ValueError:
        condition = OrderIntake.number == reference.upper()[:32]
    payload = (
        await conn.execute(select(OrderIntake.payload).where(condition))
    ).scalar_one_or_none()
    return None if payload is None else PlaceOrder.model_validate(payload)
