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


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        # well-formed base64 of "<timestamp>|<not a uuid>"
        "MjAyNi0xMi0wM1QxNjowMDowMCswMDowMHxub3QtYS11dWlk",
    ],
)
async def test_cursor_that_was_not_issued_is_a_problem(
    api: httpx.AsyncClient, cursor: str
) -> None:
    answer = await api.get("/v1/orders", params={"cursor": cursor})

    assert answer.status_code == 422
    assert answer.json()["type"] == "/problems/invalid-cursor"


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/v1/orders/SO-1%00", {}),
        ("GET", "/v1/inventory/A%00B", {}),
        ("GET", "/v1/orders", {"channel": "web\x00"}),
        ("GET", "/v1/products", {"cursor": "A\x00"}),
    ],
)
async def test_nul_bytes_in_the_url_are_refused_not_crashed_on(
    api: httpx.AsyncClient, method: str, path: str, params: dict[str, str]
) -> None:
    answer = await api.request(method, path, params=params)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM


async def test_nul_bytes_in_the_body_are_refused(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1})
    body = order_body(sku, external_id="ext\u0000id")
    body["customer"]["name"] = "Ada\u0000"

    answer = await api.post("/v1/orders", json=body)

    assert answer.status_code == 422
    assert fields(answer) == {"external_id", "customer.name"}


async def test_totals_beyond_what_the_database_holds_are_refused(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1}, currency="CLF")
    body = order_body(sku, currency="CLF")
    body["lines"][0].update(unit_price="999999999999.9999", quantity=10_000)

    answer = await api.post("/v1/orders", json=body)

    assert answer.status_code == 422
    assert fields(answer) == {"lines[0].unit_price"}


async def test_an_idempotency_key_must_be_printable(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 1})
    answer = await api.post(
        "/v1/orders", json=order_body(sku), headers={"Idempotency-Key": "a key"}
    )

    assert answer.status_code == 422
    assert fields(answer) == {"idempotency-key"}
