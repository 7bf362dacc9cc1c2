"""Bad input answers problem+json naming the field; nothing answers 500."""

import httpx
import pytest

from tests.conftest import FIRST, MakeProduct
from tests.helpers import order_body

PROBLEM = "application/problem+json"


def fields(answer: httpx.Response) -> set[str]:
    assert answer.headers["content-type"] == PROBLEM
    return {error["field"] for error in answer.json()["errors"]}


async def test_invalid_order_names_every_bad_field(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/v1/orders",
        json={
            "channel": "Web Shop",
            "customer": {"email": "not-an-email", "name": ""},
            "lines": [{"sku": "X", "quantity": 0}],
            "currency": "EUX",
            "payment": {"method": "bitcoin", "token": "t"},
        },
    )

    assert answer.status_code == 422
    assert answer.json()["type"] == "/problems/validation-error"
    assert fields(answer) >= {
        "channel",
        "customer.email",
        "customer.name",
        "shipping_address",
        "lines[0].quantity",
        "currency",
        "payment.method",
    }


async def test_unknown_fields_are_refused(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1})
    answer = await api.post("/v1/orders", json=order_body(sku, status="completed"))

    assert answer.status_code == 422
    assert fields(answer) == {"status"}


async def test_malformed_json_is_a_problem(api: httpx.AsyncClient) -> None:
    answer = await api.post(
        "/v1/orders", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert answer.status_code == 422
    assert fields(answer) == {"body"}


async def test_unknown_sku_is_not_found(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    known = await make_product({FIRST: 1})
    answer = await api.post("/v1/orders", json=order_body(known, "NO-SUCH-SKU"))

    assert answer.status_code == 404
    assert answer.json()["type"] == "/problems/sku-not-found"
    assert fields(answer) == {"lines[1].sku"}


@pytest.mark.parametrize(
    ("price", "currency"), [("9.999", "EUR"), ("10.5", "JPY"), ("-1", "EUR")]
)
async def test_price_finer_than_the_currency_allows_is_refused(
    api: httpx.AsyncClient, make_product: MakeProduct, price: str, currency: str
) -> None:
    sku = await make_product({FIRST: 1}, currency=currency)
    body = order_body(sku, currency=currency)
    body["lines"][0]["unit_price"] = price

    answer = await api.post("/v1/orders", json=body)

    assert answer.status_code == 422
    assert fields(answer) == {"lines[0].unit_price"}


async def test_currency_without_catalogue_price_needs_a_unit_price(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1}, currency="EUR")
    answer = await api.post("/v1/orders", json=order_body(sku, currency="USD"))

    assert answer.status_code == 422
    assert fields(answer) == {"lines[0].unit_price"}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/orders/4b8e7e0c-3a55-4f6e-9d7e-2f5d3b9c1a00",
        "/v1/orders/SO-999999999",
        "/v1/orders/not-an-id",
        "/v1/orders/not-an-id/timeline",
        "/v1/inventory/NO-SUCH-SKU",
        "/v1/nowhere",
    ],
)
async def test_unknown_things_are_not_found(api: httpx.AsyncClient, path: str) -> None:
    answer = await api.get(path)

    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["status"] == 404


async def test_bad_cursor_is_a_problem(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/orders", params={"cursor": "garbage"})

    assert answer.status_code == 422
    assert answer.json()["type"] == "/problems/invalid-cursor"
