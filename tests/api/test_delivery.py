"""Delivery quotes over HTTP, and orders charged and shipped as quoted."""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.inventory import Warehouse
from models.orders import OrderState, workflow_id_for
from tests.conftest import FIRST, SECOND, MakeProduct, http_client
from tests.helpers import finished, order_body, payment_events_of, stock_of
from workflows.orders import OrderWorkflow

PROBLEM = "application/problem+json"
BERLIN = {"country": "DE", "postal_code": "10115"}


async def express_warehouse(engine: AsyncEngine) -> str:
    """A new warehouse that ships express, with nothing in it yet."""
    code = f"T-X{uuid.uuid4().hex[:6].upper()}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Warehouse).values(
                code=code, name="express", country="DE", priority=50, express=True
            )
        )
    return code


def quote_body(*lines: tuple[str, int], **destination: str) -> dict[str, Any]:
    return {
        "channel": "test",
        "currency": "EUR",
        "destination": {**BERLIN, **destination},
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def offered(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    return {o["id"]: o["price"]["amount"] for o in answer.json()["options"]}


async def finish(client: Client, order_id: str) -> OrderState:
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order_id)
    )
    return await finished(handle)


async def test_a_quote_prices_the_basket_by_weight_and_destination(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 10}, price_minor=1500, weight_grams=1000)

    light = await api.post("/v1/delivery/quotes", json=quote_body((sku, 1)))
    heavy = await api.post("/v1/delivery/quotes", json=quote_body((sku, 3)))
    abroad = await api.post(
        "/v1/delivery/quotes", json=quote_body((sku, 1), country="US")
    )

    assert light.json()["weight_grams"] == 1050
    assert light.json()["goods"] == {"amount": "15.00", "currency": "EUR"}
    assert offered(light) == {
        "sandbox:standard": "4.90",
        "sandbox-express:standard": "6.90",
    }
    # 3,050 g falls into the next band; 45.00 of goods is below free delivery.
    assert offered(heavy) == {
        "sandbox:standard": "6.90",
        "sandbox-express:standard": "6.90",
    }
    assert offered(abroad) == {"sandbox:standard": "19.90"}
    first = light.json()["options"][0]
    assert first["carrier_name"] == "Sandbox Post"
    assert first["estimated_delivery"] > "2026-01-01"


async def test_standard_delivery_is_free_over_the_threshold(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 10}, price_minor=2500)

    answer = await api.post("/v1/delivery/quotes", json=quote_body((sku, 2)))

    options = {o["id"]: o for o in answer.json()["options"]}
    assert options["sandbox:standard"]["free"] is True
    assert options["sandbox:standard"]["price"]["amount"] == "0.00"
    assert options["sandbox:standard"]["list_price"]["amount"] == "4.90"


async def test_express_is_offered_only_when_express_warehouses_hold_the_basket(
    api: httpx.AsyncClient, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    express = await express_warehouse(engine)
    everywhere = await make_product({FIRST: 5, express: 5})
    slow_only = await make_product({FIRST: 5})

    both = await api.post("/v1/delivery/quotes", json=quote_body((everywhere, 1)))
    mixed = await api.post(
        "/v1/delivery/quotes", json=quote_body((everywhere, 1), (slow_only, 1))
    )
    too_many = await api.post("/v1/delivery/quotes", json=quote_body((everywhere, 6)))

    assert offered(both)["sandbox-express:express"] == "14.90"
    assert "sandbox-express:express" not in offered(mixed)
    assert "sandbox-express:express" not in offered(too_many)


async def test_an_express_order_is_charged_its_price_and_ships_express(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    express = await express_warehouse(engine)
    # The first warehouse has it too and comes first by priority, but it
    # does not ship express.
    sku = await make_product({FIRST: 5, express: 5}, price_minor=2000)
    body = order_body(sku, delivery={"option": "sandbox-express:express"})

    created = await api.post("/v1/orders", json=body)

    assert created.status_code == 201, created.text
    order = created.json()
    assert order["totals"]["shipping"] == {"amount": "14.90", "currency": "EUR"}
    assert order["totals"]["total"]["amount"] == "34.90"
    assert order["delivery"]["carrier"] == "sandbox-express"
    assert order["delivery"]["service_level"] == "express"
    assert order["delivery"]["price"] == {"amount": "14.90", "currency": "EUR"}
    done = await finish(client, order["id"])
    assert done.status == "completed"
    [parcel] = done.shipments
    assert parcel.warehouse == express
    assert parcel.carrier == "sandbox-express"
    assert parcel.tracking_number and parcel.tracking_number.startswith("SBE")
    assert parcel.label_ref
    assert await stock_of(engine, sku) == {FIRST: (5, 0), express: (4, 0)}
    assert await payment_events_of(engine, order["id"]) == [
        ("authorize", 3490),
        ("capture", 3490),
    ]
    read = (await api.get(f"/v1/orders/{order['id']}")).json()
    assert read["delivery"]["option"] == "sandbox-express:express"


async def test_delivery_is_captured_with_the_first_of_two_parcels(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    shirt = await make_product({FIRST: 5}, price_minor=1000)
    mug = await make_product({SECOND: 5}, price_minor=2500)
    body = order_body(shirt, mug, delivery={"option": "sandbox:standard"})

    order = (await api.post("/v1/orders", json=body)).json()

    assert order["totals"]["shipping"]["amount"] == "4.90"
    done = await finish(client, order["id"])
    assert done.status == "completed"
    assert {s.carrier for s in done.shipments} == {"sandbox"}
    events = await payment_events_of(engine, order["id"])
    assert events[0] == ("authorize", 3990)
    captures = sorted(amount for kind, amount in events[1:] if kind == "capture")
    # Whichever parcel leaves first carries the delivery charge.
    assert captures in ([1490, 2500], [1000, 2990])
    assert done.captured_minor == done.total_minor == 3990
    timeline = (await api.get(f"/v1/orders/{order['id']}/timeline")).json()
    charged = [e["message"] for e in timeline if e["type"] == "payment.captured"]
    # Each capture says which parcel it paid for.
    assert sorted(message.split(" for shipment ")[1] for message in charged) == sorted(
        s.number for s in done.shipments
    )


async def test_an_option_not_offered_is_refused_naming_what_is(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    no_express = order_body(sku, delivery={"option": "sandbox-express:express"})
    unknown = order_body(sku, delivery={"option": "pigeon:standard"})

    for body in (no_express, unknown):
        answer = await api.post("/v1/orders", json=body)

        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM
        problem = answer.json()
        assert problem["type"] == "/problems/delivery-option-unavailable"
        assert "sandbox:standard" in problem["detail"]
        assert problem["errors"][0]["field"] == "delivery.option"


async def test_an_integrator_quotes_only_for_its_channel(
    app: FastAPI, keys: dict[str, str], make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})

    async with http_client(app, keys["integrator"]) as integrator:
        own = await integrator.post("/v1/delivery/quotes", json=quote_body((sku, 1)))
        other = await integrator.post(
            "/v1/delivery/quotes", json={**quote_body((sku, 1)), "channel": "other"}
        )

    assert own.status_code == 200
    assert other.status_code == 403
    assert other.json()["type"] == "/problems/channel-not-allowed"
