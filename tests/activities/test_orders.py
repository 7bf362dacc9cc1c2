"""The order read model's writes keep the customer's card, under retries too."""

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from db.customers import Customer
from models.customers import customer_id_for
from models.orders import Address, OrderChanged, PlaceOrder
from models.orders import Customer as CustomerModel
from tests.helpers import place_order


def placed(
    email: str, name: str, phone: str | None, city: str, hours: int
) -> PlaceOrder:
    order = place_order([("T-CARD", 1)])
    return order.model_copy(
        update={
            "customer": CustomerModel(email=email, name=name, phone=phone),
            "shipping_address": Address(
                country="DE", city=city, postal_code="10115", line1="Main St. 1"
            ),
            "placed_at": order.placed_at + timedelta(hours=hours),
        }
    )


async def card(engine: AsyncEngine, email: str) -> Any:
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                select(func.count()).where(Customer.email == email.lower())
            )
        ).scalar_one()
        assert count == 1
        return (
            await conn.execute(select(Customer).where(Customer.email == email.lower()))
        ).one()


async def test_record_order_keeps_the_latest_contact_whatever_the_order_of_writes(
    engine: AsyncEngine,
) -> None:
    activities = OrderActivities(engine)
    email = f"Card.{uuid.uuid4().hex[:8]}@Example.com"
    middle = placed(email, "Middle", "+49 30 2", "Berlin", 0)
    newest = placed(email.lower(), "Newest", None, "Hamburg", 1)
    oldest = placed(email.upper(), "Oldest", "+49 30 1", "Köln", -1)

    for order in (middle, middle, newest, oldest, newest):  # retries included
        await ActivityEnvironment().run(activities.record_order, order)

    found = await card(engine, email)
    assert str(found.id) == customer_id_for(email)
    # The newest order gave no phone: the one given before it stays.
    assert (found.name, found.phone) == ("Newest", "+49302")
    assert [a["city"] for a in found.addresses] == ["Berlin", "Hamburg", "Köln"]
    assert found.first_order_at == oldest.placed_at
    assert found.last_order_at == newest.placed_at


async def test_an_amended_address_joins_the_card_once(engine: AsyncEngine) -> None:
    activities = OrderActivities(engine)
    email = f"amend.{uuid.uuid4().hex[:8]}@example.com"
    order = placed(email, "Ann", None, "Berlin", 0)
    await ActivityEnvironment().run(activities.record_order, order)
    moved = order.shipping_address.model_copy(update={"city": "Bonn"})
    change = OrderChanged(
        order_id=order.order_id,
        lines=order.lines,
        subtotal_minor=order.subtotal_minor,
        shipping_minor=0,
        total_minor=order.total_minor,
        shipping_address=moved,
        event_id=str(uuid.uuid4()),
        at=order.placed_at,
        type="order.amended",
        message="address changed",
        actor="ann",
    )

    for _ in range(2):
        await ActivityEnvironment().run(activities.record_order_change, change)

    found = await card(engine, email)
    assert [a["city"] for a in found.addresses] == ["Berlin", "Bonn"]
