"""Warehouse staff over HTTP: their work list, picked and packed, refusals."""

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.inventory import StockLevel
from models.orders import workflow_id_for
from tests.api.test_order_actions import picking
from tests.conftest import FIRST, MANUAL, MakeProduct, http_client
from tests.helpers import (
    finished,
    order_body,
    payment_events_of,
    stock_of,
    timeline_of,
    until_query,
)
from workflows.orders import OrderWorkflow

PROBLEM = "application/problem+json"
ONE_OF_LINE_1 = [{"line": 1, "quantity": 1}]


async def test_staff_confirm_picking_and_packing_and_the_parcel_leaves(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 4}, weight_grams=300)
    order = await picking(api, client, sku)
    async with http_client(app, keys["warehouse"]) as staff:
        work = await staff.get(
            "/v1/shipments", params={"warehouse": MANUAL, "status": "picking"}
        )
        [shipment] = [s for s in work.json()["items"] if s["order_id"] == order["id"]]
        url = f"/v1/shipments/{shipment['shipment_id']}"

        too_soon = await staff.post(f"{url}/packed", json={"weight_grams": 450})
        picked = await staff.post(f"{url}/picked", json={})
        again = await staff.post(f"{url}/picked", json={})
        packed = await staff.post(f"{url}/packed", json={"weight_grams": 450})
        read = await staff.get(url)

    assert too_soon.status_code == 409
    assert too_soon.headers["content-type"] == PROBLEM
    assert too_soon.json()["type"] == "/problems/not-picked"
    assert picked.status_code == 200, picked.text
    assert picked.json()["status"] == "picked"
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/not-picking"
    assert packed.status_code == 200, packed.text
    assert packed.json()["status"] == "packed"
    assert packed.json()["weight_grams"] == 450
    assert packed.json()["package_code"]
    assert read.json()["package_code"] == packed.json()["package_code"]

    state = await finished(
        client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(str(order["id"]))
        )
    )
    assert state.status == "completed"
    assert state.shipments[0].package_code == packed.json()["package_code"]
    assert await stock_of(engine, sku) == {MANUAL: (3, 0)}


async def test_a_pick_of_a_line_the_shipment_lacks_is_refused(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 4})
    order = await picking(api, client, sku)
    [shipment] = (await api.get(f"/v1/orders/{order['id']}")).json()["shipments"]
    url = f"/v1/shipments/{shipment['shipment_id']}/picked"
    async with http_client(app, keys["warehouse"]) as staff:
        unknown = await staff.post(url, json={"found": [{"line": 9, "quantity": 1}]})
        too_many = await staff.post(url, json={"found": [{"line": 1, "quantity": 2}]})
        admin = await api.post(url, json={})

    assert unknown.status_code == 422
    assert unknown.json()["type"] == "/problems/invalid-lines"
    assert too_many.status_code == 422
    assert admin.status_code == 200  # an admin key may do it too
    await api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "duplicate"})


async def test_an_unknown_shipment_is_404(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/v1/shipments/00000000-0000-0000-0000-000000000000/picked", json={}
    )

    assert answer.status_code == 404
    assert answer.json()["type"] == "/problems/shipment-not-found"


async def picking_two(
    api: httpx.AsyncClient, client: Client, sku: str
) -> tuple[dict[str, Any], str]:
    """An order of 2 units in the manual warehouse, its shipment picking."""
    body = order_body(sku)
    body["lines"][0]["quantity"] = 2
    order: dict[str, Any] = (await api.post("/v1/orders", json=body)).json()
    state = await until_query(
        client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(str(order["id"]))
        ),
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].status == "picking",
    )
    return order, f"/v1/shipments/{state.shipments[0].shipment_id}"


async def test_a_short_pick_ships_the_missing_units_from_another_warehouse(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 3}, price_minor=1000)
    order, url = await picking_two(api, client, sku)
    # Stock arrives in another warehouse after the order was sourced.
    async with engine.begin() as conn:
        await conn.execute(
            insert(StockLevel).values(sku=sku, warehouse=FIRST, on_hand=5)
        )

    async with http_client(app, keys["warehouse"]) as staff:
        picked = await staff.post(
            f"{url}/picked", json={"found": [{"line": 1, "quantity": 1}]}
        )
        packed = await staff.post(f"{url}/packed", json={})

    assert picked.status_code == 200, picked.text
    assert [(x["line"], x["quantity"]) for x in picked.json()["lines"]] == [(1, 1)]
    assert [(x["line"], x["quantity"]) for x in picked.json()["short"]] == [(1, 1)]
    assert packed.status_code == 200, packed.text
    state = await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order["id"]))
    )
    assert state.status == "completed"
    assert [(s.warehouse, s.lines[0].quantity) for s in state.shipments] == [
        (MANUAL, 1),
        (FIRST, 1),
    ]
    assert state.lines[0].quantity == 2
    # One unit written off in MANUAL, one shipped from each warehouse.
    assert await stock_of(engine, sku) == {MANUAL: (1, 0), FIRST: (4, 0)}
    events = await payment_events_of(engine, order["id"])
    assert events == [("authorize", 2000), ("capture", 1000), ("capture", 1000)]
    assert "stock.short_picked" in await timeline_of(engine, order["id"])


async def test_a_short_pick_nobody_can_fill_is_cancelled_and_not_charged(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 3}, price_minor=1000)
    order, url = await picking_two(api, client, sku)

    async with http_client(app, keys["warehouse"]) as staff:
        picked = await staff.post(
            f"{url}/picked", json={"found": [{"line": 1, "quantity": 1}]}
        )
        packed = await staff.post(f"{url}/packed", json={})

    assert picked.status_code == 200 and packed.status_code == 200, packed.text
    state = await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order["id"]))
    )
    assert state.status == "completed"
    line = state.lines[0]
    assert (line.quantity, line.cancelled_quantity) == (1, 1)
    assert state.total_minor == state.captured_minor == 1000
    assert await stock_of(engine, sku) == {MANUAL: (1, 0)}
    kinds = [kind for kind, _ in await payment_events_of(engine, order["id"])]
    assert kinds[0] == "authorize" and kinds[-1] == "capture"
    assert (
        sum(
            a for k, a in await payment_events_of(engine, order["id"]) if k == "capture"
        )
        == 1000
    )
    timeline = await timeline_of(engine, order["id"])
    assert "stock.short_picked" in timeline and "order.lines_cancelled" in timeline
