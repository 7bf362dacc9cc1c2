"""The orders API over HTTP, wired to the real Temporal server and worker."""

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from activities.orders import OrderActivities
from activities.payment_gateway import SandboxGateway
from activities.payments import PaymentActivities
from db.orders import OrderIntake
from models.orders import OrderEventIn, OrderStatus, PaymentStatus, workflow_id_for
from models.payments import AuthorizePayment, CapturePayment
from tests.conftest import FIRST, MakeProduct
from tests.helpers import (
    count_rows,
    finished,
    order_body,
    place_order,
    reservations_of,
    stock_of,
)
from workflows.orders import OrderWorkflow

PROBLEM = "application/problem+json"


async def wait_done(client: Client, order_id: str) -> None:
    await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))
    )


async def test_create_order_runs_it_to_completed(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    shirt = await make_product({FIRST: 5}, price_minor=1999)
    mug = await make_product({FIRST: 5}, price_minor=1250)
    body = order_body(shirt, mug)
    body["lines"][0]["quantity"] = 2
    body["lines"][1]["unit_price"] = "9.90"  # the channel's own price wins

    created = await api.post("/v1/orders", json=body)

    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "received"
    assert order["number"].startswith("SO-")
    assert created.headers["location"] == f"/v1/orders/{order['id']}"
    assert order["totals"]["total"] == {"amount": "49.88", "currency": "EUR"}
    assert [line["unit_price"]["amount"] for line in order["lines"]] == [
        "19.99",
        "9.90",
    ]

    await wait_done(client, order["id"])
    done = (await api.get(f"/v1/orders/{order['id']}")).json()
    assert done["status"] == "completed"
    assert done["payment"]["status"] == "captured"
    assert done["payment"]["captured"] == {"amount": "49.88", "currency": "EUR"}
    [shipment] = done["shipments"]
    assert shipment["status"] == "delivered"
    assert shipment["tracking_number"]
    by_number = (await api.get(f"/v1/orders/{order['number']}")).json()
    assert by_number["id"] == order["id"]

    timeline = (await api.get(f"/v1/orders/{order['id']}/timeline")).json()
    assert timeline[0]["type"] == "order.received"
    assert timeline[0]["actor"].endswith("(admin)")
    assert timeline[-1]["type"] == "order.completed"


async def test_failed_order_shows_its_reason(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1})
    created = (
        await api.post("/v1/orders", json=order_body(sku, token="tok_decline"))
    ).json()

    await wait_done(client, created["id"])
    order = (await api.get(f"/v1/orders/{created['id']}")).json()

    assert order["status"] == "failed"
    assert order["failure_reason"] == "payment_declined"
    assert order["payment"]["status"] == "declined"


async def test_same_idempotency_key_returns_the_same_order(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    body = order_body(sku)
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    first = await api.post("/v1/orders", json=body, headers=headers)
    again = await api.post("/v1/orders", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 200)
    order_id = first.json()["id"]
    assert again.json()["id"] == order_id
    await wait_done(client, order_id)
    assert len(await reservations_of(engine, order_id)) == 1
    assert await stock_of(engine, sku) == {FIRST: (4, 0)}
    runs = [
        run
        async for run in client.list_workflows(
            f"WorkflowId = '{workflow_id_for(order_id)}'"
        )
    ]
    assert len(runs) == 1
    after = await api.post("/v1/orders", json=body, headers=headers)
    assert after.status_code == 200
    assert after.json()["status"] == "completed"


async def test_concurrent_retries_create_one_order(
    api: httpx.AsyncClient, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    external_id = f"ext-{uuid.uuid4()}"
    body = order_body(sku, external_id=external_id)

    answers = await asyncio.gather(
        *(api.post("/v1/orders", json=body) for _ in range(5))
    )

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_rows(engine, OrderIntake.__table__, external_id=external_id) == 1


async def test_concurrent_requests_with_one_key_create_one_order(
    api: httpx.AsyncClient, engine: AsyncEngine, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    key = str(uuid.uuid4())

    answers = await asyncio.gather(
        *(
            api.post(
                "/v1/orders", json=order_body(sku), headers={"Idempotency-Key": key}
            )
            for _ in range(5)
        )
    )

    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count_rows(engine, OrderIntake.__table__, idempotency_key=key) == 1


async def test_same_external_id_returns_the_same_order(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    body = order_body(sku, external_id=f"ext-{uuid.uuid4()}")

    first = await api.post("/v1/orders", json=body)
    body["customer"]["name"] = "A. Lovelace"  # the channel resent it, edited
    again = await api.post("/v1/orders", json=body)

    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["customer"]["name"] == "Ada Lovelace"
    other_channel = await api.post("/v1/orders", json={**body, "channel": "other"})
    assert other_channel.status_code == 201


async def test_reused_idempotency_key_with_another_body_is_refused(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    await api.post("/v1/orders", json=order_body(sku), headers=headers)

    changed = order_body(sku)
    changed["lines"][0]["quantity"] = 2
    answer = await api.post("/v1/orders", json=changed, headers=headers)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "/problems/idempotency-key-reused"


async def test_list_orders_filters_and_pages_newest_first(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 10})
    channel = f"list-{uuid.uuid4().hex[:8]}"
    ids = []
    for _ in range(3):
        created = await api.post("/v1/orders", json=order_body(sku, channel=channel))
        ids.append(created.json()["id"])
    for order_id in ids:
        await wait_done(client, order_id)

    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"channel": channel, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/orders", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(ids))
    completed = await api.get(
        "/v1/orders", params={"channel": channel, "status": "completed"}
    )
    assert len(completed.json()["items"]) == 3
    failed = await api.get(
        "/v1/orders", params={"channel": channel, "status": "failed"}
    )
    assert failed.json()["items"] == []


async def test_order_whose_history_is_gone_is_read_from_the_read_model(
    api: httpx.AsyncClient, client: Client, engine: AsyncEngine
) -> None:
    # What is left of an order once Temporal's retention removed its history:
    # the intake row and the read model. No workflow with its id exists.
    order = place_order([("T-ARCHIVED", 2)]).model_copy(
        update={"external_id": f"ext-{uuid.uuid4()}"}
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(OrderIntake).values(
                order_id=order.order_id,
                number=order.number,
                channel=order.channel,
                external_id=order.external_id,
                request_hash="0" * 64,
                payload=order.model_dump(mode="json"),
                workflow_started=True,
            )
        )
    activities = OrderActivities(engine)
    await ActivityEnvironment().run(activities.record_order, order)
    payments = PaymentActivities(engine, SandboxGateway())
    authorization = await ActivityEnvironment().run(
        payments.authorize_payment,
        AuthorizePayment(
            order_id=order.order_id,
            method="card",
            token="tok_visa",
            amount_minor=order.total_minor,
            currency=order.currency,
            idempotency_key=f"{order.order_id}:authorize",
            event_id=str(uuid.uuid4()),
            at=order.placed_at,
        ),
    )
    await ActivityEnvironment().run(
        payments.capture_payment,
        CapturePayment(
            order_id=order.order_id,
            payment_id=authorization.payment_id,
            amount_minor=order.total_minor,
            currency=order.currency,
            idempotency_key=f"{order.order_id}:capture:1",
            event_id=str(uuid.uuid4()),
            at=order.placed_at,
        ),
    )
    await ActivityEnvironment().run(
        activities.record_order_event,
        OrderEventIn(
            order_id=order.order_id,
            event_id=str(uuid.uuid4()),
            at=order.placed_at,
            type="order.completed",
            message="done",
            status=OrderStatus.COMPLETED,
            payment_status=PaymentStatus.CAPTURED,
        ),
    )

    answer = await api.get(f"/v1/orders/{order.number}")

    assert answer.status_code == 200
    shown = answer.json()
    assert (shown["id"], shown["status"]) == (order.order_id, "completed")
    assert shown["payment"]["status"] == "captured"
    assert shown["payment"]["captured"] == shown["totals"]["total"]
    assert shown["totals"]["total"]["amount"] == "20.00"
    assert [(line["sku"], line["quantity"]) for line in shown["lines"]] == [
        ("T-ARCHIVED", 2)
    ]

    # The channel resends it: the same order comes back, nothing runs again.
    resent = order_body("T-ARCHIVED", external_id=order.external_id)
    again = await api.post("/v1/orders", json=resent)
    assert again.status_code == 200
    assert (again.json()["id"], again.json()["status"]) == (order.order_id, "completed")
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id_for(order.order_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
