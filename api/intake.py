"""Order intake: price a new order and give it an id exactly once.

The same `Idempotency-Key`, or the same channel and external order id, finds
the order already taken in, so a client that retries after a timeout gets its
order back instead of a second one. The intake row keeps the priced order, so
if the API died between taking an order in and starting its workflow, the
retry starts it from what was stored.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from api.errors import FieldError, Problem
from db.catalog import Product, ProductPrice
from db.orders import OrderIntake, order_number_seq
from models.money import to_minor
from models.orders import (
    Address,
    Customer,
    OrderCreate,
    OrderLine,
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


async def price_lines(conn: AsyncConnection, body: OrderCreate) -> list[OrderLine]:
    """Price every line from the channel's price or the catalogue's."""
    skus = {line.sku for line in body.lines}
    rows = await conn.execute(
        select(Product.sku, Product.name, ProductPrice.amount_minor)
        .outerjoin(
            ProductPrice,
            (ProductPrice.sku == Product.sku)
            & (ProductPrice.currency == body.currency),
        )
        .where(Product.sku.in_(skus))
    )
    catalogue = {row.sku: row for row in rows}
    unknown = [
        FieldError(field=f"lines[{i}].sku", message=f"unknown SKU {line.sku!r}")
        for i, line in enumerate(body.lines)
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

    lines, errors = [], []
    for i, line in enumerate(body.lines):
        product = catalogue[line.sku]
        try:
            unit = (
                to_minor(line.unit_price, body.currency)
                if line.unit_price is not None
                else product.amount_minor
            )
        except ValueError as error:
            errors.append(
                FieldError(field=f"lines[{i}].unit_price", message=str(error))
            )
            continue
        if unit is None:
            errors.append(
                FieldError(
                    field=f"lines[{i}].unit_price",
                    message=f"{line.sku} has no catalogue price in {body.currency}; "
                    "send unit_price",
                )
            )
            continue
        if unit * line.quantity > MAX_AMOUNT_MINOR:
            errors.append(
                FieldError(
                    field=f"lines[{i}].unit_price",
                    message="the line's total is beyond what the system accepts",
                )
            )
            continue
        lines.append(
            OrderLine(
                line=i + 1,
                sku=line.sku,
                name=product.name,
                quantity=line.quantity,
                unit_price_minor=unit,
                total_minor=unit * line.quantity,
            )
        )
    if not errors and sum(line.total_minor for line in lines) > MAX_AMOUNT_MINOR:
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
    return lines


async def take_in(
    conn: AsyncConnection, body: OrderCreate, idempotency_key: str | None
) -> Intake:
    """Find the order this request already created, or create it; then commit."""
    fingerprint = request_hash(body)
    existing = await _find(conn, body, idempotency_key)
    if existing is None:
        order = await _new_order(conn, body)
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


async def _new_order(conn: AsyncConnection, body: OrderCreate) -> PlaceOrder:
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
