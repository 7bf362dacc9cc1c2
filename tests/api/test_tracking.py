"""Parcels followed through carrier webhooks: delivered, lost, late, forged."""

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.webhook_signatures import SIGNATURE_HEADER
from models.orders import OrderPolicy, OrderState, workflow_id_for
from models.signatures import sign
from tests.conftest import FIRST, SECOND, MakeProduct
from tests.gates import GatedCarrier
from tests.helpers import (
    finished,
    order_body,
    payment_events_of,
    place_order,
    start_order,
    stock_of,
    timeline_of,
    until_query,
)
from workers.settings import Settings
from workflows.orders import OrderWorkflow


def silent_address(carrier: GatedCarrier) -> dict[str, str]:
    """An address whose parcels move only when a webhook says so."""
    postal_code = f"S{uuid.uuid4().hex[:8]}"
    carrier.silent.add(postal_code)
    return {
        "country": "DE",
        "city": "Berlin",
        "postal_code": postal_code,
        "line1": "Invalidenstr. 1",
    }


async def shipped(
    api: httpx.AsyncClient, client: Client, body: dict[str, Any], count: int = 1
) -> tuple[str, OrderState]:
    order_id = (await api.post("/v1/orders", json=body)).json()["id"]
    state = await until_query(
        handle(client, order_id),
        OrderWorkflow.current_state,
        lambda s: len([x for x in s.shipments if x.shipped_at]) >= count,
    )
    return order_id, state


def handle(client: Client, order_id: str) -> Any:
    return client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))


async def move(api: httpx.AsyncClient, tracking_number: str, kind: str) -> None:
    answer = await api.post(
        f"/v1/sandbox/parcels/{tracking_number}/events", json={"type": kind}
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"


async def test_a_parcel_is_followed_to_its_door_by_webhooks(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 3})
    body = order_body(sku, shipping_address=silent_address(carrier))
    order_id, state = await shipped(api, client, body)
    parcel = state.shipments[0].tracking_number
    assert parcel is not None

    for kind in ("in_transit", "out_for_delivery", "failed_attempt", "delivered"):
        await move(api, parcel, kind)

    done = await finished(handle(client, order_id))
    assert done.status == "completed"
    assert done.shipments[0].status == "delivered"
    assert done.shipments[0].tracking_status == "delivered"
    timeline = await timeline_of(engine, order_id)
    assert [t for t in timeline if t.startswith("shipment.")][-4:] == [
        "shipment.in_transit",
        "shipment.out_for_delivery",
        "shipment.failed_attempt",
        "shipment.delivered",
    ]


async def test_forged_and_replayed_carrier_webhooks_change_nothing(
    api: httpx.AsyncClient,
    client: Client,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 3})
    body = order_body(sku, shipping_address=silent_address(carrier))
    order_id, state = await shipped(api, client, body)
    event = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "tracking_number": state.shipments[0].tracking_number,
            "type": "delivered",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    url = "/v1/webhooks/carriers/sandbox"
    forged = sign("not-the-secret", int(time.time()), event)
    genuine = sign("sandbox-webhook-secret", int(time.time()), event)

    refused = await api.post(url, content=event, headers={SIGNATURE_HEADER: forged})
    first = await api.post(url, content=event, headers={SIGNATURE_HEADER: genuine})
    again = await api.post(url, content=event, headers={SIGNATURE_HEADER: genuine})

    assert refused.status_code == 401
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert (await finished(handle(client, order_id))).status == "completed"


async def test_a_lost_parcel_ships_again_from_stock_without_a_second_charge(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 1, SECOND: 1})
    body = order_body(sku, shipping_address=silent_address(carrier))
    order_id, state = await shipped(api, client, body)

    await move(api, str(state.shipments[0].tracking_number), "lost")
    state = await until_query(
        handle(client, order_id),
        OrderWorkflow.current_state,
        lambda s: len([x for x in s.shipments if x.tracking_number]) == 2,
    )
    await move(api, str(state.shipments[1].tracking_number), "delivered")

    done = await finished(handle(client, order_id))
    assert done.status == "completed"
    assert [(s.warehouse, s.status) for s in done.shipments] == [
        (FIRST, "lost"),
        (SECOND, "delivered"),
    ]
    # Both units left their shelves; the customer paid once.
    assert await stock_of(engine, sku) == {FIRST: (0, 0), SECOND: (0, 0)}
    assert await payment_events_of(engine, order_id) == [
        ("authorize", 1000),
        ("capture", 1000),
    ]
    assert "order.parcel_replaced" in await timeline_of(engine, order_id)


async def test_a_lost_parcel_nobody_can_replace_is_refunded(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 1})
    body = order_body(sku, shipping_address=silent_address(carrier))
    order_id, state = await shipped(api, client, body)

    await move(api, str(state.shipments[0].tracking_number), "returned_to_sender")

    done = await finished(handle(client, order_id))
    assert done.shipments[0].status == "returned"
    assert (done.lines[0].quantity, done.lines[0].cancelled_quantity) == (0, 1)
    assert await payment_events_of(engine, order_id) == [
        ("authorize", 1000),
        ("capture", 1000),
        ("refund", 1000),
    ]
    assert done.refunded_minor == 1000
    assert "order.parcel_refunded" in await timeline_of(engine, order_id)


async def test_a_silent_parcel_is_flagged_late_until_it_moves(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    carrier: GatedCarrier,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    postal_code = silent_address(carrier)["postal_code"]
    order = place_order(
        [(sku, 1)], postal_code=postal_code, policy=OrderPolicy(late_after_seconds=0.5)
    )
    order_handle = await start_order(client, order, settings.temporal_task_queue)

    late = await until_query(
        order_handle,
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].late,
    )
    parcel = str(late.shipments[0].tracking_number)
    listed = await api.get("/v1/shipments", params={"late": "true", "limit": 100})
    assert parcel in [s["tracking_number"] for s in listed.json()["items"]]

    await move(api, parcel, "in_transit")
    moving = await until_query(
        order_handle,
        OrderWorkflow.current_state,
        lambda s: s.shipments[0].tracking_status == "in_transit",
    )
    assert not moving.shipments[0].late
    await move(api, parcel, "delivered")
    assert (await finished(order_handle)).status == "completed"
    assert "shipment.late" in await timeline_of(engine, order.order_id)
