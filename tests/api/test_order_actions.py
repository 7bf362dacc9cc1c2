"""Cancel, amend, hold and release over HTTP; refusals name their rule."""

import uuid

import httpx
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.channels import Channel
from models.orders import workflow_id_for
from tests.conftest import FIRST, MANUAL, MakeProduct
from tests.helpers import finished, order_body, payment_events_of, stock_of, until_query
from workflows.orders import OrderWorkflow

PROBLEM = "application/problem+json"


async def picking(
    api: httpx.AsyncClient, client: Client, sku: str
) -> dict[str, object]:
    """Create an order in the manual warehouse and wait until it is picked."""
    order: dict[str, object] = (
        await api.post("/v1/orders", json=order_body(sku))
    ).json()
    await until_query(
        client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(str(order["id"]))
        ),
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].status == "picking",
    )
    return order


async def test_cancel_answers_the_cancelled_order_and_undoes_it(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 3})
    order = await picking(api, client, sku)
    view = (await api.get(f"/v1/orders/{order['id']}")).json()
    assert view["allowed_actions"] == ["cancel", "hold"]

    answer = await api.post(
        f"/v1/orders/{order['number']}/cancel",
        json={"reason": "other", "note": "customer found it cheaper"},
    )

    assert answer.status_code == 200, answer.text
    cancelled = answer.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancellation"]["reason"] == "other"
    assert cancelled["cancellation"]["note"] == "customer found it cheaper"
    assert cancelled["allowed_actions"] == []
    assert await stock_of(engine, sku) == {MANUAL: (3, 0)}
    assert [k for k, _ in await payment_events_of(engine, str(order["id"]))] == [
        "authorize",
        "void",
    ]
    timeline = (await api.get(f"/v1/orders/{order['id']}/timeline")).json()
    assert timeline[-1]["type"] == "order.cancelled"
    assert "customer found it cheaper" in timeline[-1]["message"]

    again = await api.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "duplicate"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["type"] == "/problems/order-closed"


async def test_cancel_repeated_with_its_key_answers_the_same(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({MANUAL: 3})
    order = await picking(api, client, sku)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"reason": "customer_request", "lines": [{"line": 1, "quantity": 1}]}

    first = await api.post(
        f"/v1/orders/{order['id']}/cancel", json=body, headers=headers
    )
    second = await api.post(
        f"/v1/orders/{order['id']}/cancel", json=body, headers=headers
    )

    assert (first.status_code, second.status_code) == (200, 200)
    # One unit cancelled of one: the whole order; the retry changed nothing more.
    assert first.json()["status"] == second.json()["status"] == "cancelled"


async def test_cancel_needs_a_known_reason_and_a_note_for_other(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 3})
    order = (await api.post("/v1/orders", json=order_body(sku))).json()

    unknown = await api.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "bored"}
    )
    no_note = await api.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "other"}
    )
    set_by_system = await api.post(
        f"/v1/orders/{order['id']}/cancel", json={"reason": "payment_expired"}
    )

    for answer in (unknown, no_note, set_by_system):
        assert answer.status_code == 422
        assert answer.headers["content-type"] == PROBLEM


async def test_cancel_of_lines_the_order_does_not_have_is_unprocessable(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({MANUAL: 3})
    order = await picking(api, client, sku)

    answer = await api.post(
        f"/v1/orders/{order['id']}/cancel",
        json={"reason": "customer_request", "lines": [{"line": 7, "quantity": 1}]},
    )

    assert answer.status_code == 422
    assert answer.json()["type"] == "/problems/invalid-lines"
    await api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "duplicate"})


async def test_hold_release_and_amend_over_http(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({MANUAL: 5})
    order = await picking(api, client, sku)

    held = await api.post(
        f"/v1/orders/{order['id']}/hold", json={"reason": "fraud check"}
    )
    amend = await api.post(
        f"/v1/orders/{order['id']}/amend", json={"lines": [{"sku": sku, "quantity": 2}]}
    )
    hold_again = await api.post(f"/v1/orders/{order['id']}/hold", json={"reason": "x"})
    released = await api.post(f"/v1/orders/{order['id']}/release")
    release_again = await api.post(f"/v1/orders/{order['id']}/release")

    assert held.status_code == 200
    assert held.json()["status"] == "on_hold"
    assert held.json()["hold"]["reason"] == "fraud check"
    assert "release" in held.json()["allowed_actions"]
    assert amend.status_code == 409
    assert amend.json()["type"] == "/problems/picking-started"
    assert hold_again.json()["type"] == "/problems/order-on-hold"
    assert released.json()["status"] == "in_fulfilment"
    assert release_again.json()["type"] == "/problems/order-not-on-hold"
    await api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "duplicate"})
    assert await stock_of(engine, sku) == {MANUAL: (5, 0)}


async def test_amend_validates_its_body(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    order = (await api.post("/v1/orders", json=order_body(sku))).json()

    empty = await api.post(f"/v1/orders/{order['id']}/amend", json={})
    twice = await api.post(
        f"/v1/orders/{order['id']}/amend",
        json={"lines": [{"sku": sku, "quantity": 1}, {"sku": sku, "quantity": 2}]},
    )
    unknown = await api.post(
        f"/v1/orders/{order['id']}/amend",
        json={"lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}]},
    )

    assert empty.status_code == 422
    assert twice.status_code == 422
    assert {e["field"] for e in twice.json()["errors"]} == {"lines[1].sku"}
    assert unknown.status_code == 404


async def test_actions_on_an_unknown_order_are_not_found(
    api: httpx.AsyncClient,
) -> None:
    for action, body in (
        ("cancel", {"reason": "duplicate"}),
        ("hold", {"reason": "x"}),
        ("release", None),
        ("amend", {"shipping_address": None, "lines": None}),
    ):
        answer = await api.post(f"/v1/orders/SO-999999999/{action}", json=body)
        assert answer.status_code in (404, 422)
        assert answer.headers["content-type"] == PROBLEM


async def test_backordered_order_ships_once_stock_is_adjusted_in(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 0})
    channel = f"bo-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(
            insert(Channel).values(
                code=channel,
                name="backorders",
                out_of_stock_policy="backorder",
                backorder_seconds=600,
                ask_customer_seconds=600,
                payment_link_seconds=600,
            )
        )
    order = (await api.post("/v1/orders", json=order_body(sku, channel=channel))).json()
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order["id"])
    )
    await until_query(
        handle, OrderWorkflow.current_state, lambda s: s.status == "awaiting_stock"
    )

    adjusted = await api.post(
        f"/v1/inventory/{sku}/adjust",
        json={"warehouse": FIRST, "delta": 4, "reason": "delivery from supplier"},
    )

    assert adjusted.status_code == 200
    assert adjusted.json()["on_hand"] == 4
    assert (await finished(handle)).status == "completed"
    assert await stock_of(engine, sku) == {FIRST: (3, 0)}


async def test_adjustment_below_what_is_reserved_is_refused(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({MANUAL: 2})
    order = await picking(api, client, sku)

    below = await api.post(
        f"/v1/inventory/{sku}/adjust",
        json={"warehouse": MANUAL, "delta": -2, "reason": "broken"},
    )
    zero = await api.post(
        f"/v1/inventory/{sku}/adjust",
        json={"warehouse": MANUAL, "delta": 0, "reason": "x"},
    )
    nowhere = await api.post(
        f"/v1/inventory/{sku}/adjust",
        json={"warehouse": "NOWHERE", "delta": 1, "reason": "x"},
    )

    assert below.status_code == 409
    assert below.json()["type"] == "/problems/below-reserved"
    assert zero.status_code == 422
    assert nowhere.status_code == 404
    await api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "duplicate"})
