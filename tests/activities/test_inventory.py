"""Stock reservations on PostgreSQL: one warehouse, once, never oversold."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.inventory import InventoryActivities
from db.inventory import StockLevel
from db.orders import OrderEvent
from models.errors import FailureType
from models.inventory import (
    Destination,
    ReleaseLines,
    ReleaseStock,
    Reservation,
    ReserveStock,
    StockLine,
)
from tests.conftest import FIRST, SECOND, MakeProduct
from tests.helpers import reservations_of, stock_of


def reserve_request(order_id: str, *lines: tuple[str, int]) -> ReserveStock:
    return ReserveStock(
        order_id=order_id,
        lines=[
            StockLine(line=i, sku=sku, quantity=quantity)
            for i, (sku, quantity) in enumerate(lines, start=1)
        ],
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
    )


def release_request(order_id: str) -> ReleaseStock:
    return ReleaseStock(
        order_id=order_id,
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        reason="test",
    )


async def reserve(engine: AsyncEngine, request: ReserveStock) -> Reservation:
    activities = InventoryActivities(engine)
    return await ActivityEnvironment().run(activities.reserve_stock, request)


async def test_reserve_takes_the_first_warehouse_that_has_every_line(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    a = await make_product({FIRST: 5, SECOND: 5})
    b = await make_product({FIRST: 1, SECOND: 5})
    order_id = str(uuid.uuid4())

    reservation = await reserve(engine, reserve_request(order_id, (a, 2), (b, 2)))

    assert reservation.warehouse == SECOND
    assert await stock_of(engine, a) == {FIRST: (5, 0), SECOND: (5, 2)}
    assert await stock_of(engine, b) == {FIRST: (1, 0), SECOND: (5, 2)}


async def test_reserve_twice_for_one_order_reserves_once(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order_id = str(uuid.uuid4())

    first = await reserve(engine, reserve_request(order_id, (sku, 2)))
    again = await reserve(engine, reserve_request(order_id, (sku, 2)))

    assert first == again
    assert await stock_of(engine, sku) == {FIRST: (5, 2)}
    assert await reservations_of(engine, order_id) == [(sku, FIRST, 2, "reserved")]


async def test_reserve_without_stock_is_a_final_out_of_stock(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1})

    with pytest.raises(ApplicationError) as raised:
        await reserve(engine, reserve_request(str(uuid.uuid4()), (sku, 2)))

    assert raised.value.type == FailureType.OUT_OF_STOCK
    assert raised.value.non_retryable
    assert await stock_of(engine, sku) == {FIRST: (1, 0)}


async def test_racing_orders_never_take_more_than_is_on_hand(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 3, SECOND: 2})

    results = await asyncio.gather(
        *(
            reserve(engine, reserve_request(str(uuid.uuid4()), (sku, 1)))
            for _ in range(20)
        ),
        return_exceptions=True,
    )

    accepted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, ApplicationError)]
    assert len(accepted) == 5
    assert len(refused) == 15
    assert {r.type for r in refused} == {FailureType.OUT_OF_STOCK}
    assert await stock_of(engine, sku) == {FIRST: (3, 3), SECOND: (2, 2)}


async def test_release_gives_stock_back_once(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order_id = str(uuid.uuid4())
    await reserve(engine, reserve_request(order_id, (sku, 3)))
    activities = InventoryActivities(engine)

    first = await ActivityEnvironment().run(
        activities.release_stock, release_request(order_id)
    )
    again = await ActivityEnvironment().run(
        activities.release_stock, release_request(order_id)
    )

    assert (first.units, again.units) == (3, 0)
    assert await stock_of(engine, sku) == {FIRST: (5, 0)}
    assert await reservations_of(engine, order_id) == [(sku, FIRST, 3, "released")]


async def test_database_refuses_to_reserve_more_than_on_hand(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 2})

    with pytest.raises(IntegrityError, match="reserved_within_on_hand"):
        async with engine.begin() as conn:
            await conn.execute(
                update(StockLevel)
                .where(StockLevel.sku == sku, StockLevel.warehouse == FIRST)
                .values(reserved=3)
            )


async def test_release_lines_twice_releases_once(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order_id = str(uuid.uuid4())
    await reserve(engine, reserve_request(order_id, (sku, 3)))
    request = ReleaseLines(
        order_id=order_id,
        lines=[StockLine(line=1, sku=sku, quantity=2)],
        event_id=str(uuid.uuid4()),
        at=datetime.now(UTC),
        reason="partial cancel",
    )
    activities = InventoryActivities(engine)

    first = await ActivityEnvironment().run(activities.release_lines, request)
    again = await ActivityEnvironment().run(activities.release_lines, request)

    assert (first.units, again.units) == (2, 0)
    assert await stock_of(engine, sku) == {FIRST: (5, 1)}
    assert await reservations_of(engine, order_id) == [(sku, FIRST, 1, "reserved")]


async def test_replace_reservation_swaps_all_or_nothing_and_once(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    a = await make_product({FIRST: 5})
    b = await make_product({FIRST: 1})
    order_id = str(uuid.uuid4())
    await reserve(engine, reserve_request(order_id, (a, 2)))
    activities = InventoryActivities(engine)

    too_much = reserve_request(order_id, (a, 1), (b, 2))
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(activities.replace_reservation, too_much)
    assert refused.value.type == FailureType.OUT_OF_STOCK
    assert await stock_of(engine, a) == {FIRST: (5, 2)}
    assert await stock_of(engine, b) == {FIRST: (1, 0)}

    fits = reserve_request(order_id, (a, 1), (b, 1))
    first = await ActivityEnvironment().run(activities.replace_reservation, fits)
    again = await ActivityEnvironment().run(activities.replace_reservation, fits)

    assert first == again
    assert await stock_of(engine, a) == {FIRST: (5, 1)}
    assert await stock_of(engine, b) == {FIRST: (1, 1)}


async def test_safety_stock_is_never_promised_nor_reserved(
    engine: AsyncEngine, api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5, SECOND: 4})
    async with engine.begin() as conn:
        await conn.execute(
            update(StockLevel)
            .where(StockLevel.sku == sku, StockLevel.warehouse == FIRST)
            .values(safety_stock=3)
        )
    order_id = str(uuid.uuid4())

    inventory = (await api.get(f"/v1/inventory/{sku}")).json()
    reservation = await reserve(engine, reserve_request(order_id, (sku, 4)))

    assert inventory["available"] == 2 + 4
    assert inventory["warehouses"][0] == {
        "warehouse": FIRST,
        "on_hand": 5,
        "reserved": 0,
        "safety_stock": 3,
        "available": 2,
    }
    # FIRST comes first by priority but can promise only 2 of the 4.
    assert reservation.warehouse == SECOND
    assert await stock_of(engine, sku) == {FIRST: (5, 0), SECOND: (4, 4)}


async def test_lines_split_where_the_broker_says_and_why_goes_on_the_timeline(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    a = await make_product({FIRST: 5})
    b = await make_product({SECOND: 5})
    order_id = str(uuid.uuid4())
    request = reserve_request(order_id, (a, 2), (b, 1)).model_copy(
        update={"max_shipments": 2, "destination": Destination(country="DE")}
    )

    reservation = await reserve(engine, request)

    assert [
        (x.warehouse, [line.sku for line in x.lines]) for x in reservation.shipments
    ] == [
        (FIRST, [a]),
        (SECOND, [b]),
    ]
    async with engine.connect() as conn:
        message = (
            await conn.execute(
                select(OrderEvent.message).where(
                    OrderEvent.order_id == order_id, OrderEvent.type == "stock.reserved"
                )
            )
        ).scalar_one()
    assert message == (
        f"3 units reserved: 2 in {FIRST} (lines 1); 1 in {SECOND} (lines 2); "
        f"no warehouse has every line: 2 shipments, from {FIRST} and {SECOND}, "
        "the fewest possible"
    )
    # Asked again (a retried activity), it answers the same.
    assert await reserve(engine, request) == reservation


async def test_a_channel_limited_to_some_warehouses_ships_only_from_them(
    engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5, SECOND: 5})
    order_id = str(uuid.uuid4())
    request = reserve_request(order_id, (sku, 1)).model_copy(
        update={"warehouses": [SECOND]}
    )

    reservation = await reserve(engine, request)

    assert reservation.warehouse == SECOND
    assert await stock_of(engine, sku) == {FIRST: (5, 0), SECOND: (5, 1)}
