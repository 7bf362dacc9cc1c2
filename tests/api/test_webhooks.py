"""Payment webhooks: signed, fresh, or refused; the sandbox pays links for real."""

import json
import time
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.webhook_signatures import SIGNATURE_HEADER
from db.payments import Payment
from models.orders import workflow_id_for
from models.signatures import sign
from tests.conftest import FIRST, MakeProduct
from tests.helpers import (
    finished,
    order_body,
    payment_events_of,
    timeline_of,
    until_query,
)
from workers.settings import Settings
from workflows.orders import OrderWorkflow

SECRET = "sandbox-webhook-secret"


async def link_order(
    api: httpx.AsyncClient, client: Client, engine: AsyncEngine, sku: str
) -> tuple[str, str]:
    """An order paid by link, waiting for payment; its id and link id."""
    body = order_body(sku)
    body["payment"] = {"method": "link"}
    order = (await api.post("/v1/orders", json=body)).json()
    await until_query(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order["id"])),
        OrderWorkflow.current_state,
        lambda s: s.status == "awaiting_payment",
    )
    async with engine.connect() as conn:
        link_id = (
            await conn.execute(
                select(Payment.provider_ref).where(Payment.order_id == order["id"])
            )
        ).scalar_one()
    assert link_id is not None
    return order["id"], link_id


def webhook(link_id: str, amount: str = "10.00") -> bytes:
    return json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "type": "payment_link.paid",
            "link_id": link_id,
            "amount": amount,
            "currency": "EUR",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    ).encode()


async def test_signed_webhook_pays_the_link_and_the_order_goes_on(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    order_id, link_id = await link_order(api, client, engine, sku)
    body = webhook(link_id)

    signature = {SIGNATURE_HEADER: sign(SECRET, int(time.time()), body)}

    answer = await api.post(
        "/v1/webhooks/payments/sandbox", content=body, headers=signature
    )
    replayed = await api.post(
        "/v1/webhooks/payments/sandbox", content=body, headers=signature
    )

    assert answer.status_code == 202
    assert answer.json() == {"status": "accepted"}
    assert replayed.json() == {"status": "duplicate"}
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order_id)
    )
    assert (await finished(handle)).status == "completed"
    assert await payment_events_of(engine, order_id) == [("capture", 1000)]


async def test_bad_or_stale_signatures_are_refused_and_change_nothing(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    order_id, link_id = await link_order(api, client, engine, sku)
    body = webhook(link_id)
    now = int(time.time())

    attempts = {
        "wrong secret": sign("guess", now, body),
        "stale": sign(SECRET, now - 3600, body),
        "other body": sign(SECRET, now, webhook(link_id, "0.01")),
        "garbage": "t=abc,v1=",
        "huge timestamp": "t=1" + "0" * 400 + ",v1=" + "0" * 64,
        "not hex": f"t={now},v1=" + "é" * 64,
        "two signatures": sign(SECRET, now, body) + "," + sign(SECRET, now, body),
        "missing": None,
    }
    for name, signature in attempts.items():
        headers: dict[bytes, bytes] = (
            {} if signature is None else {SIGNATURE_HEADER.encode(): signature.encode()}
        )
        answer = await api.post(
            "/v1/webhooks/payments/sandbox", content=body, headers=headers
        )
        assert answer.status_code == 401, name
        assert answer.json()["type"] == "/problems/invalid-signature"

    state = await client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order_id)
    ).query(OrderWorkflow.current_state)
    assert state.status == "awaiting_payment"
    assert await payment_events_of(engine, order_id) == []
    await api.post(f"/v1/orders/{order_id}/cancel", json={"reason": "duplicate"})


async def test_unknown_provider_or_link_is_not_found(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    body = webhook("sbx_link_nothing")
    signature = sign(SECRET, int(time.time()), body)

    other = await api.post(
        "/v1/webhooks/payments/stripe",
        content=body,
        headers={SIGNATURE_HEADER: signature},
    )
    unknown = await api.post(
        "/v1/webhooks/payments/sandbox",
        content=body,
        headers={SIGNATURE_HEADER: signature},
    )

    assert other.status_code == 404
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "/problems/payment-link-not-found"


async def test_sandbox_page_pays_the_link_like_a_customer(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 2})
    order_id, link_id = await link_order(api, client, engine, sku)
    shown = (await api.get(f"/v1/sandbox/payment-links/{link_id}")).json()
    assert (shown["amount"], shown["status"]) == ("10.00", "pending")

    failed = await api.post(f"/v1/sandbox/payment-links/{link_id}/pay?outcome=failed")
    paid = await api.post(f"/v1/sandbox/payment-links/{link_id}/pay")

    assert (failed.status_code, paid.status_code) == (202, 202)
    handle = client.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order_id)
    )
    assert (await finished(handle)).status == "completed"
    timeline = await timeline_of(engine, order_id)
    assert "payment.link_attempt_failed" in timeline
    assert "payment.link_paid" in timeline
    again = await api.post(f"/v1/sandbox/payment-links/{link_id}/pay")
    assert again.status_code == 409
