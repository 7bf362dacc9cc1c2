"""Returns over HTTP: open, receive, read, and the refusals around them.

The orders here come from a channel with an hour's return window (the
session's default is none, so that other tests' orders complete at once).
"""

from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.channels import Channel
from db.payments import PaymentEvent
from models.orders import OrderStatus, workflow_id_for
from models.returns import ReturnStatus
from tests.conftest import FIRST, MakeProduct, http_client
from tests.helpers import finished, order_body, stock_of, timeline_of, until_query
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow

PROBLEM = "application/problem+json"
CHANNEL = "returns-http"


async def delivered_order(
    api: httpx.AsyncClient, client: Client, engine: AsyncEngine, sku: str, units: int
) -> dict[str, Any]:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Channel)
            .values(code=CHANNEL, name="returns over HTTP", return_window_seconds=3600)
            .on_conflict_do_nothing()
        )
    body = order_body(sku, channel=CHANNEL)
    body["lines"][0]["quantity"] = units
    created = await api.post("/v1/orders", json=body)
    assert created.status_code == 201, created.text
    order: dict[str, Any] = created.json()
    await until_query(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order["id"])),
        OrderWorkflow.current_state,
        lambda state: state.status == OrderStatus.DELIVERED,
    )
    return order


async def test_part_of_a_delivered_order_comes_back_and_is_refunded(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5}, price_minor=1990)
    order = await delivered_order(api, client, engine, sku, 3)

    opened = await api.post(
        f"/v1/orders/{order['number']}/returns",
        json={"lines": [{"line": 1, "quantity": 2}], "reason": "size_or_fit"},
    )
    assert opened.status_code == 201, opened.text
    ret = opened.json()
    assert opened.headers["location"] == f"/v1/returns/{ret['id']}"
    assert (ret["status"], ret["rma"]) == ("awaiting_goods", f"RMA-{order['number']}-1")
    async with http_client(app, keys["warehouse"]) as warehouse:
        received = await warehouse.post(
            f"/v1/returns/{ret['id']}/received",
            json={
                "lines": [
                    {"line": 1, "quantity": 1, "outcome": "restock"},
                    {"line": 1, "quantity": 1, "outcome": "refuse"},
                ]
            },
        )
    assert received.status_code == 200, received.text
    closed = await finished(
        client.get_workflow_handle_for(ReturnWorkflow.run, ret_wf(ret))
    )
    shown = (await api.get(f"/v1/returns/{ret['id']}")).json()
    listed = (
        await api.get("/v1/returns", params={"channel": CHANNEL, "status": "closed"})
    ).json()
    on_order = (await api.get(f"/v1/orders/{order['id']}")).json()

    assert closed.status == ReturnStatus.CLOSED
    assert shown["status"] == "closed"
    assert shown["refund"] == {"amount": "19.90", "currency": "EUR"}
    assert shown["label"]["tracking_number"]
    assert ret["id"] in [item["id"] for item in listed["items"]]
    assert on_order["status"] == "delivered"
    assert on_order["returns"][0]["refund"]["amount"] == "19.90"
    assert on_order["payment"]["status"] == "partially_refunded"
    assert await stock_of(engine, sku) == {FIRST: (3, 0)}  # 5 - 3 + 1 restocked
    async with engine.connect() as conn:
        refunds = (
            await conn.execute(
                select(PaymentEvent.amount_minor).where(
                    PaymentEvent.order_id == order["id"], PaymentEvent.kind == "refund"
                )
            )
        ).scalars()
        assert list(refunds) == [1990]
    timeline = await timeline_of(engine, order["id"])
    assert [t for t in timeline if t.startswith("return.")] == [
        "return.opened",
        "return.authorized",
        "return.received",
        "return.closed",
    ]


def ret_wf(ret: dict[str, Any]) -> str:
    return f"order-{ret['order_id']}-return-1"


async def test_a_return_asks_for_no_more_than_was_delivered(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = await delivered_order(api, client, engine, sku, 1)
    url = f"/v1/orders/{order['id']}/returns"

    too_many = await api.post(
        url, json={"lines": [{"line": 1, "quantity": 2}], "reason": "damaged"}
    )
    no_line = await api.post(
        url, json={"lines": [{"line": 9, "quantity": 1}], "reason": "damaged"}
    )
    no_note = await api.post(
        url, json={"lines": [{"line": 1, "quantity": 1}], "reason": "other"}
    )
    bad_reason = await api.post(
        url, json={"lines": [{"line": 1, "quantity": 1}], "reason": "bored"}
    )

    assert too_many.status_code == 409
    assert too_many.headers["content-type"] == PROBLEM
    assert too_many.json()["type"] == "/problems/return-exceeds-delivered"
    assert no_line.status_code == 422
    assert no_line.json()["type"] == "/problems/invalid-lines"
    assert no_note.status_code == 422
    assert bad_reason.status_code == 422


async def test_a_completed_order_takes_no_returns(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    created = (await api.post("/v1/orders", json=order_body(sku))).json()
    await finished(
        client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(created["id"])
        )
    )

    late = await api.post(
        f"/v1/orders/{created['id']}/returns",
        json={"lines": [{"line": 1, "quantity": 1}], "reason": "changed_mind"},
    )

    assert late.status_code == 409
    assert late.json()["type"] == "/problems/return-window-closed"


async def test_another_channel_cannot_see_or_open_returns(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = await delivered_order(api, client, engine, sku, 1)
    ret = (
        await api.post(
            f"/v1/orders/{order['id']}/returns",
            json={"lines": [{"line": 1, "quantity": 1}], "reason": "damaged"},
        )
    ).json()

    async with http_client(app, keys["integrator"]) as integrator:  # channel test
        read = await integrator.get(f"/v1/returns/{ret['id']}")
        listed = await integrator.get("/v1/returns", params={"channel": CHANNEL})
        opened = await integrator.post(
            f"/v1/orders/{order['id']}/returns",
            json={"lines": [{"line": 1, "quantity": 1}], "reason": "damaged"},
        )
    async with http_client(app, keys["support"]) as support:
        not_in_review = await support.post(f"/v1/returns/{ret['id']}/approve", json={})

    assert read.status_code == 404
    assert listed.json()["items"] == []
    assert opened.status_code == 404
    assert not_in_review.status_code == 409
    assert not_in_review.json()["type"] == "/problems/return-not-in-review"


async def test_an_unknown_replacement_sku_names_its_field(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    order = await delivered_order(api, client, engine, sku, 1)

    answer = await api.post(
        f"/v1/orders/{order['id']}/returns",
        json={
            "lines": [{"line": 1, "quantity": 1}],
            "reason": "size_or_fit",
            "replacement": [{"sku": "NO-SUCH-SKU", "quantity": 1}],
        },
    )

    assert answer.status_code == 404
    assert answer.json()["errors"][0]["field"] == "replacement[0].sku"
