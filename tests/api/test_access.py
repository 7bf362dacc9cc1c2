"""Who may call what: every route against every role, channels, limits."""

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.access import create_key, revoke_key
from api.app import create_app
from api.deps import Services
from models.rules import Role
from tests.conftest import FIRST, MakeProduct, http_client
from tests.helpers import order_body
from workers.settings import Settings

PROBLEM = "application/problem+json"
EVERYONE = set(Role)
READERS = {Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN, Role.VIEWER}
NOBODY_KNOWN = "SO-999999999"
NO_SHIPMENT = "00000000-0000-0000-0000-000000000000"
SHIPMENT_READERS = {Role.WAREHOUSE, Role.SUPPORT, Role.ADMIN, Role.VIEWER}
# Reports span every channel, so an integrator (bound to one) may not read them.
REPORT_READERS = {Role.SUPPORT, Role.ADMIN, Role.VIEWER}
# Subscriptions carry secrets and reach outside: integrators (own channel) and admins.
SUBSCRIBERS = {Role.INTEGRATOR, Role.ADMIN}

# method, path, body, roles allowed. Bodies and ids are chosen so that an
# allowed call is refused by what comes after access control (404 or 422)
# and changes nothing.
ROUTES: list[tuple[str, str, object, set[Role]]] = [
    ("POST", "/v1/orders", {}, {Role.INTEGRATOR, Role.ADMIN}),
    ("GET", "/v1/orders", None, READERS),
    ("GET", f"/v1/orders/{NOBODY_KNOWN}", None, READERS),
    ("GET", f"/v1/orders/{NOBODY_KNOWN}/timeline", None, READERS),
    ("GET", f"/v1/orders/{NOBODY_KNOWN}/notifications", None, READERS),
    (
        "POST",
        f"/v1/orders/{NOBODY_KNOWN}/cancel",
        {"reason": "duplicate"},
        {Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN},
    ),
    (
        "POST",
        f"/v1/orders/{NOBODY_KNOWN}/amend",
        {"lines": [{"sku": "X", "quantity": 1}]},
        {Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN},
    ),
    (
        "POST",
        f"/v1/orders/{NOBODY_KNOWN}/hold",
        {"reason": "x"},
        {Role.SUPPORT, Role.ADMIN},
    ),
    ("POST", f"/v1/orders/{NOBODY_KNOWN}/release", None, {Role.SUPPORT, Role.ADMIN}),
    ("GET", "/v1/products", None, EVERYONE),
    ("GET", "/v1/inventory/NO-SUCH-SKU", None, EVERYONE),
    (
        "POST",
        "/v1/inventory/NO-SUCH-SKU/adjust",
        {"warehouse": FIRST, "delta": 1, "reason": "count"},
        {Role.ADMIN},
    ),
    ("GET", "/v1/shipments", None, SHIPMENT_READERS),
    ("GET", f"/v1/shipments/{NO_SHIPMENT}", None, SHIPMENT_READERS),
    ("POST", f"/v1/shipments/{NO_SHIPMENT}/picked", {}, {Role.WAREHOUSE, Role.ADMIN}),
    ("POST", f"/v1/shipments/{NO_SHIPMENT}/packed", {}, {Role.WAREHOUSE, Role.ADMIN}),
    ("GET", "/v1/sandbox/payment-links/sbx_link_none", None, EVERYONE),
    ("POST", "/v1/sandbox/parcels/SBX0/events", {"type": "lost"}, EVERYONE),
    ("POST", "/v1/sandbox/payment-links/sbx_link_none/pay", None, EVERYONE),
    ("POST", "/v1/delivery/quotes", {}, {Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN}),
    (
        "POST",
        f"/v1/orders/{NOBODY_KNOWN}/returns",
        {"lines": [{"line": 1, "quantity": 1}], "reason": "damaged"},
        {Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN},
    ),
    ("GET", "/v1/returns", None, EVERYONE),
    ("GET", f"/v1/returns/{NO_SHIPMENT}", None, EVERYONE),
    ("POST", f"/v1/returns/{NO_SHIPMENT}/approve", {}, {Role.SUPPORT, Role.ADMIN}),
    (
        "POST",
        f"/v1/returns/{NO_SHIPMENT}/reject",
        {"reason": "no"},
        {Role.SUPPORT, Role.ADMIN},
    ),
    (
        "POST",
        f"/v1/returns/{NO_SHIPMENT}/received",
        {"lines": [{"line": 1, "quantity": 1, "outcome": "restock"}]},
        {Role.WAREHOUSE, Role.ADMIN},
    ),
    ("GET", f"/v1/customers/{NO_SHIPMENT}", None, READERS),
    ("GET", "/v1/customers?email=nobody@example.invalid", None, READERS),
    (
        "GET",
        "/v1/exports/orders?from=2001-01-01T00:00:00Z&to=2001-01-01T00:00:00Z",
        None,
        READERS,
    ),
    *[
        ("GET", f"/v1/reports/{report}", None, REPORT_READERS)
        for report in (
            "sales",
            "top-sellers",
            "slow-movers",
            "cancellations",
            "returns",
            "return-rates",
            "lead-times",
        )
    ],
    ("GET", "/v1/reports/stock", None, REPORT_READERS | {Role.WAREHOUSE}),
    ("GET", "/v1/webhooks/events", None, SUBSCRIBERS),
    ("POST", "/v1/webhooks/subscriptions", {}, SUBSCRIBERS),
    ("GET", "/v1/webhooks/subscriptions", None, SUBSCRIBERS),
    ("GET", f"/v1/webhooks/subscriptions/{NO_SHIPMENT}", None, SUBSCRIBERS),
    ("PATCH", f"/v1/webhooks/subscriptions/{NO_SHIPMENT}", {}, SUBSCRIBERS),
    ("DELETE", f"/v1/webhooks/subscriptions/{NO_SHIPMENT}", None, SUBSCRIBERS),
    ("GET", "/v1/webhooks/deliveries", None, SUBSCRIBERS),
    ("GET", "/v1/webhooks/deliveries/0", None, SUBSCRIBERS),
    ("POST", "/v1/webhooks/deliveries/0/replay", None, SUBSCRIBERS),
]
# Routes that need no key: probes, and webhooks that carry a signature instead.
OPEN = {"/healthz", "/readyz", "/v1/webhooks/payments/", "/v1/webhooks/carriers/"}


def test_the_table_covers_every_route(app: FastAPI) -> None:
    # The OpenAPI document lists every operation, however the routers nest.
    operations = [
        (method.upper(), template)
        for template, item in app.openapi()["paths"].items()
        if not any(template.startswith(prefix) for prefix in OPEN)
        for method in item
    ]
    uncovered = [
        f"{method} {template}"
        for method, template in operations
        if not any(
            method == listed
            and re.fullmatch(
                re.sub(r"{[^}]+}", "[^/]+", template), path.partition("?")[0]
            )
            for listed, path, _, _ in ROUTES
        )
    ]

    assert len(operations) > len(OPEN)
    assert uncovered == []


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"),
    ROUTES,
    ids=[f"{method} {path}" for method, path, _, _ in ROUTES],
)
async def test_every_route_needs_a_key_of_an_allowed_role(
    app: FastAPI,
    keys: dict[str, str],
    method: str,
    path: str,
    body: object,
    allowed: set[Role],
) -> None:
    async with http_client(app, None) as anonymous:
        answer = await anonymous.request(method, path, json=body)
    assert answer.status_code == 401, "no key"
    assert answer.headers["www-authenticate"] == "Bearer"
    async with http_client(app, "oms_not-a-key") as forged:
        assert (await forged.request(method, path, json=body)).status_code == 401

    for role in Role:
        async with http_client(app, keys[role.value]) as http:
            answer = await http.request(method, path, json=body)
        assert answer.headers["content-type"] in (PROBLEM, "application/json")
        if role in allowed:
            assert answer.status_code not in (401, 403), role
        else:
            assert answer.status_code == 403, role
            assert answer.json()["type"] == "/problems/forbidden"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_need_no_key(app: FastAPI, path: str) -> None:
    async with http_client(app, None) as anonymous:
        assert (await anonymous.get(path)).status_code == 200


async def test_an_integrator_sees_and_touches_only_its_channel(
    app: FastAPI,
    api: httpx.AsyncClient,
    keys: dict[str, str],
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})
    theirs = (
        await api.post("/v1/orders", json=order_body(sku, channel="other"))
    ).json()

    async with http_client(app, keys["integrator"]) as integrator:
        own = await integrator.post("/v1/orders", json=order_body(sku, channel="test"))
        elsewhere = await integrator.post(
            "/v1/orders", json=order_body(sku, channel="other")
        )
        read = await integrator.get(f"/v1/orders/{theirs['id']}")
        timeline = await integrator.get(f"/v1/orders/{theirs['id']}/timeline")
        cancel = await integrator.post(
            f"/v1/orders/{theirs['id']}/cancel", json={"reason": "duplicate"}
        )
        listed = await integrator.get("/v1/orders", params={"channel": "other"})
        listed_own = await integrator.get("/v1/orders", params={"limit": 100})

    assert own.status_code == 201
    assert own.json()["channel"] == "test"
    assert elsewhere.status_code == 403
    assert elsewhere.json()["type"] == "/problems/channel-not-allowed"
    # Another channel's order is not there for this key, whatever it asks.
    assert (read.status_code, timeline.status_code, cancel.status_code) == (
        404,
        404,
        404,
    )
    assert listed.json()["items"] == []
    assert {o["channel"] for o in listed_own.json()["items"]} == {"test"}
    own_timeline = (await api.get(f"/v1/orders/{own.json()['id']}/timeline")).json()
    assert own_timeline[0]["actor"].endswith("(integrator)")


async def test_a_revoked_key_stops_working_at_once(
    app: FastAPI, engine: AsyncEngine
) -> None:
    key = await create_key(engine, name="leaving-soon", role=Role.VIEWER, channel=None)
    async with http_client(app, key) as http:
        before = await http.get("/v1/products")
        assert await revoke_key(engine, "leaving-soon")
        after = await http.get("/v1/products")

    assert (before.status_code, after.status_code) == (200, 401)
    assert not await revoke_key(engine, "leaving-soon")


@pytest.fixture
async def strict_app(
    client: Client, engine: AsyncEngine, settings: Settings
) -> AsyncIterator[FastAPI]:
    strict = settings.model_copy(
        update={
            "rate_limit_per_second": 1.0,
            "rate_limit_burst": 2.0,
            "max_body_bytes": 1000,
        }
    )
    yield create_app(strict, Services(engine, client, strict))


async def test_too_many_requests_answer_429_with_retry_after(
    strict_app: FastAPI, keys: dict[str, str]
) -> None:
    async with http_client(strict_app, keys["viewer"]) as http:
        answers = [
            await http.get("/v1/products", params={"limit": 1}) for _ in range(3)
        ]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json()["type"] == "/problems/rate-limited"
    assert int(answers[2].headers["retry-after"]) >= 1


async def test_oversized_bodies_are_refused_declared_or_streamed(
    strict_app: FastAPI, keys: dict[str, str]
) -> None:
    big = b'{"channel": "' + b"x" * 5000 + b'"}'

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 500):
            yield big[start : start + 500]

    async with http_client(strict_app, keys["admin"]) as http:
        declared = await http.post(
            "/v1/orders", content=big, headers={"Content-Type": "application/json"}
        )
        streamed = await http.post(
            "/v1/orders", content=stream(), headers={"Content-Type": "application/json"}
        )

    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json()["type"] == "/problems/payload-too-large"


async def test_unknown_or_repeated_query_parameters_are_refused(
    api: httpx.AsyncClient,
) -> None:
    misspelt = await api.get("/v1/orders", params={"stauts": "cancelled"})
    repeated = await api.get("/v1/orders", params=[("limit", "1"), ("limit", "2")])
    fine = await api.get("/v1/orders", params={"status": "cancelled", "limit": 1})

    assert misspelt.status_code == 422
    assert misspelt.json()["errors"] == [
        {"field": "stauts", "message": "unknown query parameter"}
    ]
    assert repeated.status_code == 422
    assert repeated.json()["errors"] == [
        {"field": "limit", "message": "given more than once"}
    ]
    assert fine.status_code == 200


async def test_a_name_is_taken_while_its_key_is_live(engine: AsyncEngine) -> None:
    name = f"twice-{uuid.uuid4().hex[:8]}"
    first = await create_key(engine, name=name, role=Role.SUPPORT, channel=None)

    with pytest.raises(ValueError, match="a live key named"):
        await create_key(engine, name=name, role=Role.VIEWER, channel=None)
    await revoke_key(engine, name)
    second = await create_key(engine, name=name, role=Role.VIEWER, channel=None)

    assert first != second
