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

from activities.carriers import DeliveryPricing
from api.delivery import Basket, choose_delivery
from api.errors import Problem
from api.pricing import channel_policy, quote_lines
from db.orders import OrderIntake, order_number_seq
from models.orders import (
    Address,
    Customer,
    OrderCreate,
    OrderLine,
    OrderPolicy,
    PaymentDetails,
    PlaceOrder,
)


@dataclass(frozen=True)
class Intake:
    order: PlaceOrder
    created: bool
    workflow_started: bool


def request_hash(body: OrderCreate) -> str:
    return hashlib.sha256(body.model_dump_json().encode()).hexdigest()


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


async def take_in(
    conn: AsyncConnection,
    body: OrderCreate,
    idempotency_key: str | None,
    *,
    pricing: DeliveryPricing,
    created_by: str | None = None,
    defaults: OrderPolicy | None = None,
) -> Intake:
    """Find the order this request already created, or create it; then commit."""
    fingerprint = request_hash(body)
    existing = await _find(conn, body, idempotency_key)
    if existing is None:
        order = await _new_order(
            conn, body, pricing, created_by, defaults or OrderPolicy()
        )
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
    conn: AsyncConnection,
    body: OrderCreate,
    pricing: DeliveryPricing,
    created_by: str | None,
    defaults: OrderPolicy,
) -> PlaceOrder:
    lines = await price_lines(conn, body)
    subtotal = sum(line.total_minor for line in lines)
    policy = await channel_policy(conn, body.channel, defaults)
    delivery = None
    if body.delivery is not None:
        basket = Basket.of(
            ((line.sku, line.quantity, line.unit_price_minor) for line in lines),
            body.currency,
            body.shipping_address.country,
            policy,
        )
        delivery, policy = await choose_delivery(
            conn, pricing, basket, body.delivery.option, policy
        )
    # Without a chosen option the channel charged delivery itself.
    shipping = 0 if delivery is None else delivery.price_minor
    number = (await conn.execute(order_number_seq.next_value())).scalar_one()
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
        policy=policy,
        created_by=created_by,
        placed_at=datetime.now(UTC),
        delivery=delivery,
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
