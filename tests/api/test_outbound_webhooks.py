"""Outbound webhooks: every event reaches a subscriber that was down, once
acknowledged never again, in order per order, signed; subscriptions are
managed per role."""

import dataclasses
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from api.deps import Services
from db.outbox import Delivery, OutboxEvent, Subscription
from models.orders import workflow_id_for
from tests.conftest import FIRST, MakeProduct, http_client
from tests.helpers import eventually, finished, free_port, order_body
from workers.settings import Settings
from workflows.orders import OrderWorkflow

PROBLEM = "application/problem+json"


@dataclass
class Received:
    event_id: str
    type: str
    attempt: int
    body: bytes
    signature: str
    status: int


@dataclass
class Subscriber:
    """A subscriber's HTTP endpoint: down until `start()`, then it answers
    `failures` requests with 500 before it acknowledges with 204."""

    port: int
    failures: int = 0
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/oms"

    def start(self) -> None:
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with subscriber._lock:
                    status = 500 if subscriber.failures > 0 else 204
                    subscriber.failures -= 1
                    subscriber.received.append(
                        Received(
                            event_id=self.headers["OMS-Event-Id"],
                            type=self.headers["OMS-Event-Type"],
                            attempt=int(self.headers["OMS-Delivery-Attempt"]),
                            body=body,
                            signature=self.headers["OMS-Signature"],
                            status=status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def acknowledged(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.status == 204]


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    endpoint = Subscriber(free_port())
    yield endpoint
    endpoint.stop()


def _signed_by(secret: str, received: Received) -> bool:
    parts = dict(part.split("=", 1) for part in received.signature.split(","))
    expected = hmac.new(
        secret.encode(), f"{parts['t']}.".encode() + received.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


async def test_a_subscriber_that_was_down_gets_every_event_once_in_order(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
    subscriber: Subscriber,
) -> None:
    channel = f"wh-{uuid.uuid4().hex[:8]}"
    created = await api.post(
        "/v1/webhooks/subscriptions",
        json={"url": subscriber.url, "event_types": ["*"], "channel": channel},
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    secret = subscription["secret"]
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(Subscription.secret).where(Subscription.id == subscription["id"])
            )
        ).scalar_one()
    # Kept sealed with the codec key: the database alone cannot sign.
    assert stored.startswith("sealed:") and secret not in stored
    sku = await make_product({FIRST: 10})

    # The subscriber is down: orders go through regardless.
    order_ids = []
    for _ in range(3):
        placed = await api.post("/v1/orders", json=order_body(sku, channel=channel))
        assert placed.status_code == 201, placed.text
        order_ids.append(placed.json()["id"])
    for order_id in order_ids:
        handle = client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(order_id)
        )
        assert (await finished(handle)).status == "completed"

    async def failing() -> bool:
        page = await api.get(
            "/v1/webhooks/deliveries",
            params={"subscription_id": subscription["id"], "status": "pending"},
        )
        return any(item["attempts"] > 0 for item in page.json()["items"])

    await eventually(failing)
    seen = (await api.get(f"/v1/webhooks/subscriptions/{subscription['id']}")).json()
    assert seen["failures"] > 0 and "ConnectError" in seen["last_error"]
    # What is still to be sent cannot be replayed: it would go out twice.
    waiting = (
        await api.get(
            "/v1/webhooks/deliveries",
            params={"subscription_id": subscription["id"], "status": "pending"},
        )
    ).json()["items"][0]
    refused = await api.post(f"/v1/webhooks/deliveries/{waiting['id']}/replay")
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/delivery-pending"

    async with engine.connect() as conn:
        events = (
            await conn.execute(
                select(OutboxEvent.event_id, OutboxEvent.type, OutboxEvent.order_id)
                .where(OutboxEvent.order_id.in_(order_ids))
                .order_by(OutboxEvent.id)
            )
        ).all()
    expected = {str(event.event_id) for event in events}
    assert {event.type for event in events} >= {
        "order.created",
        "order.confirmed",
        "shipment.shipped",
        "shipment.delivered",
        "order.completed",
    }

    # It comes back, and even fails a few more times first.
    subscriber.failures = 2
    subscriber.start()

    async def all_acknowledged() -> bool:
        return {r.event_id for r in subscriber.acknowledged()} >= expected

    await eventually(all_acknowledged)

    acknowledged = subscriber.acknowledged()
    # Nothing acknowledged is sent again, even after another pass.
    ids = [r.event_id for r in acknowledged]
    assert len(ids) == len(set(ids)) == len(expected)
    assert any(r.status == 500 for r in subscriber.received)
    # Per order, in the order the events happened.
    for order_id in order_ids:
        happened = [str(e.event_id) for e in events if str(e.order_id) == order_id]
        arrived = [
            r.event_id
            for r in acknowledged
            if json.loads(r.body)["order"]["id"] == order_id
        ]
        assert arrived == happened
    for received in acknowledged:
        assert _signed_by(secret, received)
        payload = json.loads(received.body)
        assert payload["id"] == received.event_id
        assert payload["type"] == received.type
        assert payload["order"]["channel"] == channel
    first = json.loads(acknowledged[0].body)
    assert first["type"] == "order.created"
    assert first["order"]["number"].startswith("SO-")

    async def all_delivered() -> bool:
        async with engine.connect() as conn:
            states = (
                await conn.execute(
                    select(Delivery.status).where(
                        Delivery.subscription_id == subscription["id"]
                    )
                )
            ).scalars()
            return set(states) == {"delivered"}

    await eventually(all_delivered)
    log = await api.get(
        "/v1/webhooks/deliveries",
        params={"subscription_id": subscription["id"], "limit": 200},
    )
    assert {item["event_id"] for item in log.json()["items"]} == expected
    assert len(subscriber.acknowledged()) == len(expected)


async def test_a_delivery_can_be_inspected_and_replayed(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
    subscriber: Subscriber,
) -> None:
    channel = f"wh-{uuid.uuid4().hex[:8]}"
    subscriber.start()
    created = await api.post(
        "/v1/webhooks/subscriptions",
        json={
            "url": subscriber.url,
            "event_types": ["order.created"],
            "channel": channel,
        },
    )
    subscription = created.json()
    sku = await make_product({FIRST: 1})
    placed = await api.post("/v1/orders", json=order_body(sku, channel=channel))
    order_id = placed.json()["id"]

    async def delivered() -> bool:
        return len(subscriber.acknowledged()) == 1

    await eventually(delivered)
    await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))
    )
    page = (
        await api.get(
            "/v1/webhooks/deliveries", params={"subscription_id": subscription["id"]}
        )
    ).json()
    # Only the type it asked for; nobody wanted the others, so none was kept.
    assert [item["event_type"] for item in page["items"]] == ["order.created"]
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                select(OutboxEvent.type).where(OutboxEvent.order_id == order_id)
            )
        ).scalars()
        assert list(kept) == ["order.created"]
    delivery = page["items"][0]
    detail = (await api.get(f"/v1/webhooks/deliveries/{delivery['id']}")).json()
    assert detail["status"] == "delivered" and detail["attempts"] == 1
    assert detail["payload"]["order"]["id"] == order_id

    replayed = await api.post(f"/v1/webhooks/deliveries/{delivery['id']}/replay")
    assert replayed.status_code == 202
    assert replayed.json()["status"] == "pending"

    async def again() -> bool:
        return len(subscriber.acknowledged()) == 2

    await eventually(again)
    first, second = subscriber.acknowledged()
    assert second.event_id == first.event_id == delivery["event_id"]
    assert second.body == first.body


async def test_an_event_is_given_up_after_its_attempts_and_the_next_goes_on(
    api: httpx.AsyncClient,
    client: Client,
    make_product: MakeProduct,
    settings: Settings,
    subscriber: Subscriber,
) -> None:
    channel = f"wh-{uuid.uuid4().hex[:8]}"
    # It refuses every attempt at the first event, then accepts.
    subscriber.failures = settings.webhook_max_attempts
    subscriber.start()
    subscription = (
        await api.post(
            "/v1/webhooks/subscriptions",
            json={
                "url": subscriber.url,
                "event_types": ["order.created", "order.confirmed"],
                "channel": channel,
            },
        )
    ).json()
    sku = await make_product({FIRST: 1})
    placed = (
        await api.post("/v1/orders", json=order_body(sku, channel=channel))
    ).json()
    await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(placed["id"]))
    )

    async def confirmed_arrived() -> bool:
        return [r.type for r in subscriber.acknowledged()] == ["order.confirmed"]

    await eventually(confirmed_arrived)
    log = (
        await api.get(
            "/v1/webhooks/deliveries", params={"subscription_id": subscription["id"]}
        )
    ).json()["items"]
    by_type = {item["event_type"]: item for item in log}
    given_up = by_type["order.created"]
    assert given_up["status"] == "failed"
    assert given_up["attempts"] == settings.webhook_max_attempts
    assert given_up["last_status_code"] == 500
    assert by_type["order.confirmed"]["status"] == "delivered"
    refused = [r for r in subscriber.received if r.type == "order.created"]
    assert [r.attempt for r in refused] == list(
        range(1, settings.webhook_max_attempts + 1)
    )

    # Someone fixes the subscriber and sends the given-up event again.
    replayed = await api.post(f"/v1/webhooks/deliveries/{given_up['id']}/replay")
    assert replayed.status_code == 202

    async def created_arrived() -> bool:
        return [r.type for r in subscriber.acknowledged()] == [
            "order.confirmed",
            "order.created",
        ]

    await eventually(created_arrived)


async def test_subscriptions_belong_to_admins_and_each_integrators_channel(
    app: FastAPI, api: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    async with http_client(app, keys["integrator"]) as integrator:
        own = await integrator.post(
            "/v1/webhooks/subscriptions",
            json={"url": "https://example.com/a", "event_types": ["order.created"]},
        )
        assert own.status_code == 201, own.text
        assert own.json()["channel"] == "test"
        other = await integrator.post(
            "/v1/webhooks/subscriptions",
            json={
                "url": "https://example.com/b",
                "event_types": ["order.created"],
                "channel": "elsewhere",
            },
        )
        assert other.status_code == 403
        assert other.headers["content-type"] == PROBLEM
        admins = await api.post(
            "/v1/webhooks/subscriptions",
            json={"url": "https://example.com/c", "event_types": ["*"]},
        )
        mine = {
            s["id"] for s in (await integrator.get("/v1/webhooks/subscriptions")).json()
        }
        assert own.json()["id"] in mine and admins.json()["id"] not in mine
        hidden = await integrator.get(
            f"/v1/webhooks/subscriptions/{admins.json()['id']}"
        )
        assert hidden.status_code == 404
        assert (
            "secret"
            not in (
                await integrator.get(f"/v1/webhooks/subscriptions/{own.json()['id']}")
            ).json()
        )
    async with http_client(app, keys["viewer"]) as viewer:
        assert (await viewer.get("/v1/webhooks/subscriptions")).status_code == 403

    paused = await api.patch(
        f"/v1/webhooks/subscriptions/{admins.json()['id']}", json={"active": False}
    )
    assert paused.json()["active"] is False
    gone = await api.delete(f"/v1/webhooks/subscriptions/{admins.json()['id']}")
    assert gone.status_code == 204
    assert (
        await api.get(f"/v1/webhooks/subscriptions/{admins.json()['id']}")
    ).status_code == 404
    # The integrator removes its own (and the rest of the suite's orders in
    # channel `test` are not queued for an address that does not answer).
    async with http_client(app, keys["integrator"]) as integrator:
        removed = await integrator.delete(
            f"/v1/webhooks/subscriptions/{own.json()['id']}"
        )
    assert removed.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com/a", "event_types": ["order.exploded"]},
        {"url": "https://example.com/a", "event_types": []},
        {"url": "not a url", "event_types": ["order.created"]},
        {"url": "ftp://example.com/a", "event_types": ["order.created"]},
        # A host no request can be addressed to.
        {"url": "http://\N{PILE OF POO}.la/", "event_types": ["order.created"]},
    ],
)
async def test_a_bad_subscription_is_refused_with_a_problem(
    api: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    refused = await api.post("/v1/webhooks/subscriptions", json=body)

    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hooks",
        "http://10.20.30.40/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://localhost:8000/v1/orders",
    ],
)
async def test_our_own_network_is_no_subscriber(
    app: FastAPI, keys: dict[str, str], url: str
) -> None:
    services: Services = app.state.services
    settings = services.settings.model_copy(update={"webhook_private_networks": False})
    guarded = create_app(settings, dataclasses.replace(services, settings=settings))

    async with http_client(guarded, keys["integrator"]) as integrator:
        refused = await integrator.post(
            "/v1/webhooks/subscriptions",
            json={"url": url, "event_types": ["order.created"]},
        )

    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "url"
    assert "not a public address" in refused.json()["errors"][0]["message"]


async def test_the_event_catalogue_names_the_published_types(
    api: httpx.AsyncClient,
) -> None:
    types = (await api.get("/v1/webhooks/events")).json()["event_types"]

    assert {"order.created", "refund.issued", "shipment.shipped"} <= set(types)
    assert "order.received" not in types
