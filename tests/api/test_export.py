"""The order export: its content, its formats, its refusals, and that it streams.

Orders are written straight into the read model, each test on a channel and
in a time range of its own long ago, so other tests' orders never show up.
"""

import asyncio
import csv
import io
import json
import random
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api import exports
from db.orders import Order, OrderLine
from models.customers import customer_id_for
from models.exports import CSV_COLUMNS
from tests.conftest import http_client

PROBLEM = "application/problem+json"
ADDRESS = {
    "country": "DE",
    "city": "Berlin",
    "postal_code": "10115",
    "line1": "Invalidenstr. 1",
    "line2": None,
    "region": None,
}


def unique_channel() -> str:
    return f"export-{uuid.uuid4().hex[:8]}"


def some_day_long_ago() -> datetime:
    """A day of its own in the 1990s (no test order is that old)."""
    return datetime(1990, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(3000))


def an_order(
    channel: str,
    at: datetime,
    lines: list[tuple[str, int, int]],
    *,
    currency: str = "EUR",
    shipping_minor: int = 0,
    **values: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An orders row and its order_lines rows; lines are (sku, quantity, price).

    Every row has the same keys: a bulk insert takes its columns from the first.
    """
    order_id = str(uuid.uuid4())
    subtotal = sum(quantity * price for _, quantity, price in lines)
    row = {
        "id": order_id,
        "number": f"X-{order_id[:13]}",
        "channel": channel,
        "status": "received",
        "payment_status": "pending",
        "payment_method": "card",
        "customer_email": "Export@Example.com",
        "customer_name": "Ex Port",
        "customer_phone": None,
        "shipping_address": ADDRESS,
        "currency": currency,
        "subtotal_minor": subtotal,
        "shipping_minor": shipping_minor,
        "total_minor": subtotal + shipping_minor,
        "captured_minor": 0,
        "cancel_reason": None,
        "created_at": at,
        **values,
    }
    line_rows = [
        {
            "order_id": order_id,
            "line": number,
            "sku": sku,
            "name": f"product {sku}",
            "quantity": quantity,
            "unit_price_minor": price,
            "total_minor": quantity * price,
        }
        for number, (sku, quantity, price) in enumerate(lines, start=1)
    ]
    return row, line_rows


async def store(
    engine: AsyncEngine, *orders: tuple[dict[str, Any], list[dict[str, Any]]]
) -> list[str]:
    async with engine.begin() as conn:
        await conn.execute(insert(Order), [row for row, _ in orders])
        await conn.execute(insert(OrderLine), [line for _, ls in orders for line in ls])
    return [row["id"] for row, _ in orders]


def day_of(start: datetime, channel: str | None = None, **more: str) -> dict[str, str]:
    params = {
        "from": start.isoformat(),
        "to": (start + timedelta(days=1)).isoformat(),
        **more,
    }
    if channel is not None:
        params["channel"] = channel
    return params


async def test_export_has_each_order_of_the_range_with_its_lines(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel, start = unique_channel(), some_day_long_ago()
    before, first, second, at_end = await store(
        engine,
        an_order(channel, start - timedelta(seconds=1), [("A", 1, 100)]),
        an_order(
            channel,
            start + timedelta(hours=1),
            [("SHIRT", 2, 990), ("MUG", 1, 500)],
            shipping_minor=490,
            status="delivered",
            payment_status="captured",
            captured_minor=2970,
            customer_phone="+49 30 1234567",
        ),
        an_order(
            channel,
            start + timedelta(hours=2),
            [("TEA", 3, 500)],
            currency="JPY",
            status="cancelled",
            cancel_reason="customer_request",
        ),
        an_order(channel, start + timedelta(days=1), [("A", 1, 100)]),
    )

    answer = await api.get("/v1/exports/orders", params=day_of(start, channel))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    exported = [json.loads(line) for line in answer.text.splitlines()]
    assert [order["id"] for order in exported] == [first, second]
    shirt = exported[0]
    assert shirt["customer_id"] == customer_id_for("export@example.com")
    assert (shirt["status"], shirt["payment_status"]) == ("delivered", "captured")
    assert shirt["customer_phone"] == "+49 30 1234567"
    assert shirt["shipping_address"] == ADDRESS
    assert (shirt["subtotal"], shirt["shipping"], shirt["total"]) == (
        {"amount": "24.80", "currency": "EUR"},
        {"amount": "4.90", "currency": "EUR"},
        {"amount": "29.70", "currency": "EUR"},
    )
    assert shirt["captured"] == {"amount": "29.70", "currency": "EUR"}
    assert [
        (line["line"], line["sku"], line["quantity"], line["total"]["amount"])
        for line in shirt["lines"]
    ] == [(1, "SHIRT", 2, "19.80"), (2, "MUG", 1, "5.00")]
    tea = exported[1]
    assert tea["total"] == {"amount": "1500", "currency": "JPY"}
    assert (tea["status"], tea["cancel_reason"]) == ("cancelled", "customer_request")
    assert before not in answer.text and at_end not in answer.text


async def test_csv_export_has_a_row_per_order_line(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    channel, start = unique_channel(), some_day_long_ago()
    first, second = await store(
        engine,
        an_order(channel, start, [("SHIRT", 2, 990), ("MUG", 1, 500)]),
        an_order(
            channel,
            start + timedelta(hours=1),
            [("TEA", 1, 1999)],
            customer_name='=HYPERLINK("http://evil.example","Ada")',
        ),
    )

    by_accept = await api.get(
        "/v1/exports/orders",
        params=day_of(start, channel),
        headers={"Accept": "text/csv"},
    )
    by_format = await api.get(
        "/v1/exports/orders",
        params=day_of(start, channel, format="csv"),
        headers={"Accept": "application/x-ndjson"},
    )

    assert by_accept.status_code == 200, by_accept.text
    assert by_accept.headers["content-type"] == "text/csv; charset=utf-8"
    assert by_format.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(by_accept.text)))
    assert [(r["order_id"], r["line"], r["sku"]) for r in rows] == [
        (first, "1", "SHIRT"),
        (first, "2", "MUG"),
        (second, "1", "TEA"),
    ]
    assert rows[0]["unit_price"] == "9.90" and rows[0]["line_total"] == "19.80"
    assert rows[1]["order_total"] == "24.80" and rows[1]["currency"] == "EUR"
    assert rows[2]["customer_email"] == "Export@Example.com"
    assert rows[2]["ship_city"] == "Berlin"
    # A name that a spreadsheet would run as a formula is shown as text.
    assert rows[2]["customer_name"] == '\'=HYPERLINK("http://evil.example","Ada")'
    assert rows[0]["customer_name"] == "Ex Port"
    assert list(rows[0]) == CSV_COLUMNS


@pytest.mark.parametrize(
    "params",
    [
        {"to": "2001-01-02T00:00:00Z"},
        {"from": "2001-01-02T00:00:00Z"},
        {"from": "2001-01-02T00:00:00Z", "to": "2001-01-01T00:00:00Z"},
        {"from": "2001-01-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"},
        {"from": "yesterday", "to": "2001-01-01T00:00:00Z"},
        {"from": "2001-01-01", "to": "2001-01-02", "format": "xml"},
    ],
)
async def test_export_needs_a_valid_range_and_format(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    answer = await api.get("/v1/exports/orders", params=params)

    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "/problems/validation-error"


async def test_an_integrator_exports_its_own_channel_only(
    app: FastAPI, keys: dict[str, str], engine: AsyncEngine
) -> None:
    start = some_day_long_ago()
    own, _ = await store(
        engine,
        an_order("test", start, [("A", 1, 100)]),
        an_order("other", start, [("A", 1, 100)]),
    )

    async with http_client(app, keys["integrator"]) as integrator:
        everything = await integrator.get("/v1/exports/orders", params=day_of(start))
        elsewhere = await integrator.get(
            "/v1/exports/orders", params=day_of(start, "other")
        )
    async with http_client(app, keys["warehouse"]) as warehouse:
        refused = await warehouse.get("/v1/exports/orders", params=day_of(start))

    assert [json.loads(line)["id"] for line in everything.text.splitlines()] == [own]
    assert (elsewhere.status_code, elsewhere.text) == (200, "")
    assert refused.status_code == 403


async def test_a_large_export_is_sent_in_batches_as_it_is_read(
    app: FastAPI,
    keys: dict[str, str],
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(exports, "BATCH_ROWS", 50)
    channel, start = unique_channel(), some_day_long_ago()
    ids = await store(
        engine,
        *(
            an_order(
                channel, start + timedelta(seconds=i), [("A", 1, 100), ("B", 1, 1)]
            )
            for i in range(500)
        ),
    )

    status, chunks = await _raw_get(
        app,
        "/v1/exports/orders",
        httpx.QueryParams(day_of(start, channel)),
        keys["viewer"],
    )

    assert status == 200
    # 1,000 rows in batches of 50: a chunk per batch, none holding it all.
    assert len(chunks) >= 19
    assert max(chunk.count(b"\n") for chunk in chunks) <= 25
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ids


async def _raw_get(
    app: FastAPI, path: str, query: httpx.QueryParams, key: str
) -> tuple[int, list[bytes]]:
    """Call the app as a server would, keeping each body chunk it sends
    (httpx's ASGI transport joins them)."""
    sent: list[MutableMapping[str, Any]] = []
    done = asyncio.Event()
    asked = False

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": str(query).encode(),
        "root_path": "",
        "headers": [(b"host", b"oms"), (b"authorization", f"Bearer {key}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("oms", 80),
    }
    await app(scope, receive, send)
    done.set()
    [start] = [m for m in sent if m["type"] == "http.response.start"]
    chunks = [
        m["body"] for m in sent if m["type"] == "http.response.body" and m["body"]
    ]
    return start["status"], chunks
