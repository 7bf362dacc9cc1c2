"""Customer cards over HTTP: figures, lookups and who may see what.

Each test's customer has an email of its own, so cards never mix with other
tests' orders in the shared database.
"""

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from db.channels import Channel
from models.customers import customer_id_for
from models.orders import OrderStatus, workflow_id_for
from tests.conftest import FIRST, MANUAL, MakeProduct, http_client
from tests.helpers import finished, order_body, until_query
from workflows.orders import OrderWorkflow
from workflows.returns import ReturnWorkflow

PROBLEM = "application/problem+json"
RETURNS_CHANNEL = "customers-returns"
BERLIN = {
    "country": "DE",
    "city": "Berlin",
    "postal_code": "10115",
    "line1": "Invalidenstr. 1",
}
HAMBURG = {
    "country": "DE",
    "city": "Hamburg",
    "postal_code": "20095",
    "line1": "Hafenstr. 1",
}


def unique_email() -> str:
    return f"Grace.{uuid.uuid4().hex[:10]}@Example.COM"


async def order(
    api: httpx.AsyncClient, sku: str, email: str, **overrides: Any
) -> dict[str, Any]:
    customer = {"email": email, "name": "Grace Hopper"}
    customer.update(overrides.pop("customer", {}))
    created = await api.post(
        "/v1/orders", json=order_body(sku, customer=customer, **overrides)
    )
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


async def done(client: Client, order_id: str) -> None:
    await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))
    )


async def card_of(http: httpx.AsyncClient, customer_id: str) -> dict[str, Any]:
    """The card as it stands (wait first for the workflows that write it)."""
    answer = await http.get(f"/v1/customers/{customer_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def money(amount: str, currency: str) -> dict[str, str]:
    return {"amount": amount, "currency": currency}


async def test_card_adds_up_each_currency_apart_from_cancelled_and_returned(
    api: httpx.AsyncClient,
    app: FastAPI,
    keys: dict[str, str],
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Channel)
            .values(code=RETURNS_CHANNEL, name="returns", return_window_seconds=3600)
            .on_conflict_do_nothing()
        )
    shirt = await make_product({FIRST: 5}, price_minor=1999)
    cap = await make_product({FIRST: 5}, price_minor=2500, currency="USD")
    held = await make_product({MANUAL: 5}, price_minor=1000)
    scarf = await make_product({FIRST: 5}, price_minor=1250)
    email = unique_email()

    # 2 x 19.99 EUR, delivered and kept.
    first = await order(api, shirt, email, lines=[{"sku": shirt, "quantity": 2}])
    await done(client, first["id"])
    # 25.00 USD to Hamburg, with a phone number.
    second = await order(
        api,
        cap,
        email,
        currency="USD",
        shipping_address=HAMBURG,
        customer={"phone": "+49 (30) 555-0100"},
    )
    await done(client, second["id"])
    # 10.00 EUR, cancelled while being picked: nothing taken.
    third = await order(api, held, email)
    await until_query(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(third["id"])),
        OrderWorkflow.current_state,
        lambda s: bool(s.shipments) and s.shipments[0].status == "picking",
    )
    cancelled = await api.post(
        f"/v1/orders/{third['id']}/cancel", json={"reason": "customer_request"}
    )
    assert cancelled.json()["status"] == "cancelled"
    # 2 x 12.50 EUR under a new name; one scarf comes back and is refunded.
    fourth = await order(
        api,
        scarf,
        email.lower(),
        channel=RETURNS_CHANNEL,
        lines=[{"sku": scarf, "quantity": 2}],
        customer={"name": "Grace B. Hopper"},
    )
    await until_query(
        client.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(fourth["id"])
        ),
        OrderWorkflow.current_state,
        lambda state: state.status == OrderStatus.DELIVERED,
    )
    opened = (
        await api.post(
            f"/v1/orders/{fourth['id']}/returns",
            json={"lines": [{"line": 1, "quantity": 1}], "reason": "damaged"},
        )
    ).json()
    async with http_client(app, keys["warehouse"]) as warehouse:
        received = await warehouse.post(
            f"/v1/returns/{opened['id']}/received",
            json={"lines": [{"line": 1, "quantity": 1, "outcome": "restock"}]},
        )
    assert received.status_code == 200, received.text
    await finished(
        client.get_workflow_handle_for(
            ReturnWorkflow.run, f"order-{fourth['id']}-return-1"
        )
    )

    customer_id = first["customer_id"]
    # The return's workflow refunded the scarf before it finished.
    card = await card_of(api, customer_id)

    assert customer_id == customer_id_for(email.lower())
    assert {second["customer_id"], third["customer_id"], fourth["customer_id"]} == {
        customer_id
    }
    assert first["customer_url"] == f"/v1/customers/{customer_id}"
    assert card["email"] == email.lower()
    assert card["name"] == "Grace B. Hopper"
    assert card["phone"] == "+49305550100"
    assert [a["city"] for a in card["addresses"]] == ["Berlin", "Hamburg"]
    assert card["order_count"] == 4
    assert [o["id"] for o in card["recent_orders"]] == [
        fourth["id"],
        third["id"],
        second["id"],
        first["id"],
    ]
    assert card["value"] == [
        {
            "currency": "EUR",
            "orders": 3,
            "ordered": money("64.98", "EUR"),  # 39.98 + 25.00; not the cancelled
            "captured": money("64.98", "EUR"),
            "refunded": money("12.50", "EUR"),
            "lifetime_value": money("52.48", "EUR"),
        },
        {
            "currency": "USD",
            "orders": 1,
            "ordered": money("25.00", "USD"),
            "captured": money("25.00", "USD"),
            "refunded": money("0.00", "USD"),
            "lifetime_value": money("25.00", "USD"),
        },
    ]
    assert card["returns"] == {
        "delivered_orders": 3,
        "returned_orders": 1,
        "rate": "0.3333",
    }
    two = (await api.get(f"/v1/customers/{customer_id}", params={"limit": 2})).json()
    assert [o["id"] for o in two["recent_orders"]] == [fourth["id"], third["id"]]
    assert two["order_count"] == 4
    assert card["orders_url"] == f"/v1/orders?customer_id={customer_id}"
    paging = {"customer_id": customer_id, "limit": 3}
    listed = (await api.get("/v1/orders", params=paging)).json()
    assert [o["id"] for o in listed["items"]] == [
        fourth["id"],
        third["id"],
        second["id"],
    ]
    assert listed["items"][0]["customer_id"] == customer_id
    rest = (
        await api.get("/v1/orders", params={**paging, "cursor": listed["next_cursor"]})
    ).json()
    assert [o["id"] for o in rest["items"]] == [first["id"]]
    view = (await api.get(f"/v1/orders/{first['id']}")).json()
    assert view["customer_url"] == f"/v1/customers/{customer_id}"


async def test_lookup_finds_a_customer_by_email_or_phone_however_typed(
    api: httpx.AsyncClient, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 5})
    email = unique_email()
    digits = f"{uuid.uuid4().int % 10**8:08d}"
    phone = f"+49 30 {digits}"
    placed = await order(api, sku, email, customer={"phone": phone})
    await done(client, placed["id"])
    typed_otherwise = f"+49-(30)-{digits[:4]} {digits[4:]}"

    by_email = await api.get("/v1/customers", params={"email": email.upper()})
    by_phone = await api.get("/v1/customers", params={"phone": typed_otherwise})
    nobody = await api.get(
        "/v1/customers", params={"email": f"{uuid.uuid4().hex}@example.com"}
    )

    assert by_email.status_code == 200, by_email.text
    [found] = by_email.json()["items"]
    assert found["id"] == placed["customer_id"]
    assert found["email"] == email.lower()
    assert found["name"] == "Grace Hopper"
    assert found["url"] == f"/v1/customers/{placed['customer_id']}"
    assert [c["id"] for c in by_phone.json()["items"]] == [placed["customer_id"]]
    assert nobody.json() == {"items": [], "next_cursor": None}


async def test_bad_lookups_are_refused_and_unknown_cards_are_not_found(
    api: httpx.AsyncClient,
) -> None:
    bad_email = await api.get("/v1/customers", params={"email": "not-an-email"})
    neither = await api.get("/v1/customers")
    both = await api.get(
        "/v1/customers", params={"email": "a@example.com", "phone": "+4930123456"}
    )
    unknown = await api.get(f"/v1/customers/{uuid.uuid4()}")
    malformed = await api.get("/v1/customers/not-a-uuid")

    for refused in (bad_email, neither, both, malformed):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "/problems/validation-error"
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["type"] == "/problems/customer-not-found"


async def test_an_integrator_sees_a_customer_only_through_its_own_channel(
    api: httpx.AsyncClient,
    app: FastAPI,
    client: Client,
    keys: dict[str, str],
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 10}, price_minor=1500)
    email = unique_email()
    own = await order(api, sku, email, channel="test")
    elsewhere = await order(
        api,
        sku,
        email,
        channel="other",
        shipping_address=HAMBURG,
        customer={"name": "Grace Elsewhere", "phone": "+33 1 23 45 67 89"},
    )
    stranger = await order(api, sku, unique_email(), channel="other")
    customer_id = own["customer_id"]
    for placed in (own, elsewhere, stranger):
        await done(client, placed["id"])
    staff_card = await card_of(api, customer_id)
    assert staff_card["order_count"] == 2

    async with http_client(app, keys["integrator"]) as integrator:
        card = await integrator.get(f"/v1/customers/{customer_id}")
        hidden = await integrator.get(f"/v1/customers/{stranger['customer_id']}")
        by_email = await integrator.get("/v1/customers", params={"email": email})
        by_other_phone = await integrator.get(
            "/v1/customers", params={"phone": "+33123456789"}
        )
        stranger_by_email = await integrator.get(
            "/v1/customers", params={"email": stranger["customer"]["email"]}
        )
        orders = await integrator.get("/v1/orders", params={"customer_id": customer_id})
    async with http_client(app, keys["viewer"]) as viewer:
        viewed = await viewer.get(f"/v1/customers/{customer_id}")
    async with http_client(app, keys["warehouse"]) as warehouse:
        refused = await warehouse.get(f"/v1/customers/{customer_id}")

    # Staff see every channel: the latest name and phone, both addresses.
    assert staff_card["name"] == "Grace Elsewhere"
    assert staff_card["phone"] == "+33123456789"
    assert len(staff_card["addresses"]) == 2
    assert viewed.status_code == 200
    assert viewed.json()["order_count"] == 2
    # The integrator sees what its own channel knows, and nothing else.
    assert card.status_code == 200, card.text
    seen = card.json()
    assert (seen["name"], seen["phone"]) == ("Grace Hopper", None)
    assert seen["addresses"] == [{**BERLIN, "line2": None, "region": None}]
    assert seen["order_count"] == 1
    assert [o["id"] for o in seen["recent_orders"]] == [own["id"]]
    assert [v["ordered"] for v in seen["value"]] == [money("15.00", "EUR")]
    assert [c["id"] for c in by_email.json()["items"]] == [customer_id]
    assert by_email.json()["items"][0]["name"] == "Grace Hopper"
    assert by_other_phone.json()["items"] == []
    assert hidden.status_code == 404
    assert hidden.json()["type"] == "/problems/customer-not-found"
    assert stranger_by_email.json()["items"] == []
    assert [o["id"] for o in orders.json()["items"]] == [own["id"]]
    assert refused.status_code == 403
