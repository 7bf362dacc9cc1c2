"""Reports against figures worked out by hand on a small fixed data set.

The data set lives in a database of its own on the test server, so orders
that other tests create never reach these figures. Most orders were placed
in November 2025 (UTC); a few a couple of days ago, for the slow movers.
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.access import create_key
from api.app import create_app
from api.deps import Services
from db.catalog import Product
from db.engine import create_engine
from db.inventory import StockLevel, Warehouse
from db.orders import Order, OrderLine
from db.returns import Return
from db.shipping import Shipment
from models.returns import ReturnLine, ReturnState
from models.rules import Role
from tests.conftest import http_client
from tests.helpers import scratch_database
from workers.settings import Settings

PROBLEM = "application/problem+json"
NOVEMBER = {"from": "2025-11-01", "to": "2025-11-30"}
NOW = datetime.now(UTC)

PRODUCTS = {
    "A-TEE": ("T-shirt", "apparel"),
    "A-MUG": ("Mug", "home"),
    "A-LAMP": ("Lamp", "home"),
    "A-OLD": ("Old stock", "home"),
}
STOCK_COLUMNS = ("warehouse", "sku", "on_hand", "reserved", "safety_stock")
STOCK = [
    ("RW1", "A-TEE", 100, 5, 0),
    ("RW2", "A-TEE", 8, 2, 1),
    ("RW1", "A-MUG", 3, 3, 0),
    ("RW1", "A-LAMP", 20, 0, 15),
    ("RW2", "A-OLD", 50, 0, 0),
]


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


# name: placed at, channel, country, currency, status, cancel reason, shipping,
# lines as (sku, quantity, unit price, cancelled units)
ORDERS: dict[str, tuple[Any, ...]] = {
    "o1": (at(2, 10), "web", "DE", "EUR", "completed", None, 490,
           [("A-TEE", 2, 1000, 0), ("A-MUG", 1, 500, 0)]),
    # 23:30 UTC is 00:30 the next day in Berlin.
    "o2": (at(2, 23, 30), "web", "NL", "EUR", "delivered", None, 0,
           [("A-TEE", 1, 1000, 1)]),
    "o3": (at(3, 12), "marketplace", "DE", "EUR", "in_fulfilment", None, 0,
           [("A-LAMP", 1, 4000, 0)]),
    "o4": (at(4, 9), "web", "GB", "GBP", "completed", None, 0,
           [("A-TEE", 3, 900, 0)]),
    "o5": (at(4, 10), "web", "DE", "EUR", "cancelled", "customer_request", 490,
           [("A-MUG", 2, 500, 0)]),
    "o6": (at(5, 10), "marketplace", "DE", "EUR", "failed", None, 0,
           [("A-LAMP", 1, 4000, 0)]),
    "o7": (at(5, 11), "marketplace", "FR", "EUR", "cancelled", "fraud_suspected", 0,
           [("A-TEE", 1, 1000, 0)]),
    "o8": (at(20, 10, month=10), "web", "DE", "EUR", "completed", None, 0,
           [("A-TEE", 5, 1000, 0)]),
    "o9": (at(6, 8), "web", "GB", "GBP", "cancelled", "customer_request", 0,
           [("A-MUG", 1, 450, 0)]),
    "o10": (NOW - timedelta(days=2), "web", "DE", "EUR", "completed", None, 0,
            [("A-TEE", 10, 1000, 0), ("A-LAMP", 1, 4000, 0)]),
    "o11": (NOW - timedelta(days=40), "web", "DE", "EUR", "completed", None, 0,
            [("A-OLD", 1, 700, 0)]),
}  # fmt: skip
# order, warehouse, carrier, shipped at, delivered at
SHIPMENTS = [
    ("o1", "RW1", "sandbox", at(2, 22), at(4, 22)),  # 12 h, then 48 h
    ("o2", "RW1", "sandbox", at(3, 23, 30), at(5, 11, 30)),  # 24 h, then 36 h
    ("o3", "RW1", "sandbox", at(5, 0), None),  # 36 h, on its way
    ("o4", "RW2", "express", at(4, 15), at(5, 15)),  # 6 h, then 24 h
]
# order, opened at, reason, status, refund, lines as (line, sku, quantity)
RETURNS = [
    ("o1", at(10, 9), "size_or_fit", "closed", 1000, [(1, "A-TEE", 1)]),
    ("o4", at(12, 9), "damaged", "awaiting_goods", 0, [(1, "A-TEE", 2)]),
    ("o1", at(15, 9), "damaged", "rejected", 0, [(2, "A-MUG", 1)]),
    ("o3", at(20, 9, month=12), "damaged", "closed", 4000, [(1, "A-LAMP", 1)]),
]


def _order_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    ids = {name: str(uuid.uuid4()) for name in ORDERS}
    orders, lines = [], []
    for name, (
        placed,
        channel,
        country,
        currency,
        status,
        reason,
        shipping,
        items,
    ) in ORDERS.items():
        subtotal = sum(quantity * price for _, quantity, price, _ in items)
        orders.append(
            {
                "id": ids[name],
                "number": f"R-{name}",
                "channel": channel,
                "status": status,
                "payment_status": "captured",
                "payment_method": "card",
                "customer_email": "ada@example.com",
                "customer_name": "Ada",
                "shipping_address": {"country": country, "city": "X",
                                     "postal_code": "1", "line1": "Y"},
                "currency": currency,
                "subtotal_minor": subtotal,
                "units": sum(quantity for _, quantity, _, _ in items),
                "shipping_minor": shipping,
                "total_minor": subtotal + shipping,
                "cancel_reason": reason,
                "created_at": placed,
            }
        )  # fmt: skip
        lines += [
            {
                "order_id": ids[name],
                "line": number,
                "sku": sku,
                "name": PRODUCTS[sku][0],
                "quantity": quantity,
                "unit_price_minor": price,
                "total_minor": quantity * price,
                "cancelled_quantity": cancelled,
            }
            for number, (sku, quantity, price, cancelled) in enumerate(items, 1)
        ]
    return orders, lines, ids


def _return_row(
    ids: dict[str, str], number: int, entry: tuple[Any, ...]
) -> dict[str, Any]:
    order, opened, reason, status, refund, items = entry
    state = ReturnState(
        return_id=str(uuid.uuid4()),
        number=number,
        rma=f"RMA-{number}",
        order_id=ids[order],
        order_number=f"R-{order}",
        channel=ORDERS[order][1],
        currency=ORDERS[order][3],
        status=status,
        reason=reason,
        lines=[
            ReturnLine(line=line, sku=sku, name=sku, quantity=units, unit_price_minor=1)
            for line, sku, units in items
        ],
        warehouse="RW1",
        refund_minor=refund,
        opened_by="test",
        opened_at=opened,
    )
    return {
        "id": state.return_id,
        "order_id": state.order_id,
        "rma": state.rma,
        "workflow_id": state.workflow_id,
        "channel": state.channel,
        "status": status,
        "reason": reason,
        "currency": state.currency,
        "refund_minor": refund,
        "state": state.model_dump(mode="json"),
        "created_at": opened,
    }


async def _load(engine: AsyncEngine) -> None:
    orders, lines, ids = _order_rows()
    async with engine.begin() as conn:
        await conn.execute(
            insert(Warehouse),
            [
                {"code": "RW1", "name": "one", "country": "DE"},
                {"code": "RW2", "name": "two", "country": "NL"},
            ],
        )
        await conn.execute(
            insert(Product),
            [
                {"sku": sku, "name": name, "category": category, "weight_grams": 1}
                for sku, (name, category) in PRODUCTS.items()
            ],
        )
        await conn.execute(
            insert(StockLevel),
            [dict(zip(STOCK_COLUMNS, row, strict=True)) for row in STOCK],
        )
        await conn.execute(insert(Order), orders)
        await conn.execute(insert(OrderLine), lines)
        await conn.execute(
            insert(Shipment),
            [
                {
                    "id": str(uuid.uuid4()),
                    "order_id": ids[order],
                    "number": f"R-{order}-1",
                    "warehouse": warehouse,
                    "status": "shipped" if delivered is None else "delivered",
                    "carrier": carrier,
                    "shipped_at": shipped,
                    "delivered_at": delivered,
                }
                for order, warehouse, carrier, shipped, delivered in SHIPMENTS
            ],
        )
        await conn.execute(
            insert(Return),
            [_return_row(ids, n, entry) for n, entry in enumerate(RETURNS, 1)],
        )


@pytest.fixture(scope="module")
async def reports_keys(
    database_url: str, settings: Settings, client: Client
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[Role, str]]]:
    """The API on a database holding the fixed data set alone, and a key per role."""
    with scratch_database(database_url) as url:
        engine = create_engine(url, pool_size=2)
        await _load(engine)
        keys = {
            role: await create_key(
                engine,
                name=f"reports-{role}",
                role=role,
                channel="web" if role == Role.INTEGRATOR else None,
            )
            for role in Role
        }
        app = create_app(settings, Services(engine, client, settings))
        async with http_client(app, keys[Role.VIEWER]) as http:
            yield http, keys
        await engine.dispose()


@pytest.fixture
def reports(
    reports_keys: tuple[httpx.AsyncClient, dict[Role, str]],
) -> httpx.AsyncClient:
    """The reports API as a viewer."""
    return reports_keys[0]


async def _rows(http: httpx.AsyncClient, path: str, **params: Any) -> list[Any]:
    answer = await http.get(f"/v1/reports/{path}", params=params)
    assert answer.status_code == 200, answer.text
    rows: list[Any] = answer.json()["rows"]
    return rows


def _sales(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            row["group"],
            row["currency"],
            row["orders"],
            row["units"],
            row["revenue"]["amount"],
            row["average_order_value"]["amount"],
        )
        for row in rows
    ]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        (
            "channel",
            [
                ("marketplace", "EUR", 1, 1, "40.00", "40.00"),
                ("web", "EUR", 2, 4, "35.00", "17.50"),
                ("web", "GBP", 1, 3, "27.00", "27.00"),
            ],
        ),
        (
            "region",
            [
                ("DE", "EUR", 2, 4, "65.00", "32.50"),
                ("GB", "GBP", 1, 3, "27.00", "27.00"),
                ("NL", "EUR", 1, 1, "10.00", "10.00"),
            ],
        ),
        (
            "category",
            [
                ("apparel", "EUR", 2, 3, "30.00", "15.00"),
                ("apparel", "GBP", 1, 3, "27.00", "27.00"),
                ("home", "EUR", 2, 2, "45.00", "22.50"),
            ],
        ),
        (
            "day",
            [
                ("2025-11-02", "EUR", 2, 4, "35.00", "17.50"),
                ("2025-11-03", "EUR", 1, 1, "40.00", "40.00"),
                ("2025-11-04", "GBP", 1, 3, "27.00", "27.00"),
            ],
        ),
        (
            "week",
            [
                ("2025-10-27", "EUR", 2, 4, "35.00", "17.50"),
                ("2025-11-03", "EUR", 1, 1, "40.00", "40.00"),
                ("2025-11-03", "GBP", 1, 3, "27.00", "27.00"),
            ],
        ),
        (
            "month",
            [
                ("2025-11-01", "EUR", 3, 5, "75.00", "25.00"),
                ("2025-11-01", "GBP", 1, 3, "27.00", "27.00"),
            ],
        ),
    ],
)
async def test_sales_counts_live_orders_per_group_and_currency(
    reports: httpx.AsyncClient, group_by: str, expected: list[tuple[Any, ...]]
) -> None:
    answer = await reports.get(
        "/v1/reports/sales", params=NOVEMBER | {"group_by": group_by}
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["period"] == {"from": "2025-11-01", "to": "2025-11-30", "tz": "UTC"}
    assert body["group_by"] == group_by
    assert _sales(body["rows"]) == expected


async def test_sales_days_follow_the_time_zone(reports: httpx.AsyncClient) -> None:
    berlin = {"tz": "Europe/Berlin", "group_by": "day"}

    rows = await _rows(reports, "sales", **NOVEMBER, **berlin)
    first_days = await _rows(
        reports, "sales", **berlin, **{"from": "2025-11-01", "to": "2025-11-02"}
    )
    weeks = await _rows(reports, "sales", **NOVEMBER, **berlin | {"group_by": "week"})

    # o2, at 23:30 UTC on the 2nd, was placed on the 3rd in Berlin.
    assert _sales(rows) == [
        ("2025-11-02", "EUR", 1, 3, "25.00", "25.00"),
        ("2025-11-03", "EUR", 2, 2, "50.00", "25.00"),
        ("2025-11-04", "GBP", 1, 3, "27.00", "27.00"),
    ]
    assert _sales(first_days) == [("2025-11-02", "EUR", 1, 3, "25.00", "25.00")]
    assert _sales(weeks)[0] == ("2025-10-27", "EUR", 1, 3, "25.00", "25.00")


async def test_top_sellers_rank_by_units_across_currencies(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "top-sellers", **NOVEMBER, limit=2)

    assert [
        (r["rank"], r["sku"], r["currency"], r["orders"], r["units"], r["revenue"])
        for r in rows
    ] == [
        (1, "A-TEE", "EUR", 2, 3, {"amount": "30.00", "currency": "EUR"}),
        (1, "A-TEE", "GBP", 1, 3, {"amount": "27.00", "currency": "GBP"}),
        (2, "A-LAMP", "EUR", 1, 1, {"amount": "40.00", "currency": "EUR"}),
    ]


async def test_slow_movers_are_unsold_or_covered_for_long(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "slow-movers", days=30, cover_days=90)
    fewer = await _rows(reports, "slow-movers", days=30, cover_days=365)

    # A-MUG has nothing left to sell; A-OLD last sold 40 days ago.
    assert [
        (r["sku"], r["stock"], r["units_sold"], r["units_per_day"], r["days_of_cover"])
        for r in rows
    ] == [
        ("A-OLD", 50, 0, 0.0, None),
        ("A-LAMP", 20, 1, 0.033, 600.0),
        ("A-TEE", 101, 10, 0.333, 303.0),
    ]
    assert [row["sku"] for row in fewer] == ["A-OLD", "A-LAMP"]


async def test_stock_flags_what_is_low_per_warehouse(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "stock")
    low = await _rows(reports, "stock", low_stock_units=5, low_only="true")
    second = await _rows(reports, "stock", warehouse="RW2")

    assert [
        (r["warehouse"], r["sku"], r["available"], r["low_stock"]) for r in rows
    ] == [
        ("RW1", "A-LAMP", 5, True),
        ("RW1", "A-MUG", 0, True),
        ("RW1", "A-TEE", 95, False),
        ("RW2", "A-OLD", 50, False),
        ("RW2", "A-TEE", 5, True),
    ]
    assert [(r["warehouse"], r["sku"]) for r in low] == [
        ("RW1", "A-LAMP"),
        ("RW1", "A-MUG"),
        ("RW2", "A-TEE"),
    ]
    assert [r["sku"] for r in second] == ["A-OLD", "A-TEE"]


async def test_cancellations_count_and_value_per_reason(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "cancellations", **NOVEMBER)

    assert [(r["reason"], r["orders"], r["value"]) for r in rows] == [
        ("customer_request", 1, {"amount": "14.90", "currency": "EUR"}),
        ("customer_request", 1, {"amount": "4.50", "currency": "GBP"}),
        ("fraud_suspected", 1, {"amount": "10.00", "currency": "EUR"}),
    ]


async def test_returns_by_reason_leave_out_rejected_ones(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "returns", **NOVEMBER)

    assert [
        (r["reason"], r["currency"], r["returns"], r["units"], r["refunded"]["amount"])
        for r in rows
    ] == [("damaged", "GBP", 1, 2, "0.00"), ("size_or_fit", "EUR", 1, 1, "10.00")]


async def test_return_rate_is_returned_over_sold_units_per_sku(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "return-rates", **NOVEMBER)

    # A-LAMP's return was opened in December, for an order of November.
    assert [
        (r["sku"], r["units_sold"], r["units_returned"], r["return_rate"]) for r in rows
    ] == [("A-LAMP", 1, 1, 1.0), ("A-TEE", 6, 3, 0.5), ("A-MUG", 1, 0, 0.0)]


async def test_lead_times_are_percentiles_per_warehouse_and_carrier(
    reports: httpx.AsyncClient,
) -> None:
    rows = await _rows(reports, "lead-times", **NOVEMBER)

    assert rows == [
        {
            "warehouse": "RW1",
            "carrier": "sandbox",
            "shipments": 3,
            "order_to_ship_p50_hours": 24.0,
            "order_to_ship_p90_hours": 33.6,
            "delivered": 2,
            "ship_to_delivery_p50_hours": 42.0,
            "ship_to_delivery_p90_hours": 46.8,
        },
        {
            "warehouse": "RW2",
            "carrier": "express",
            "shipments": 1,
            "order_to_ship_p50_hours": 6.0,
            "order_to_ship_p90_hours": 6.0,
            "delivered": 1,
            "ship_to_delivery_p50_hours": 24.0,
            "ship_to_delivery_p90_hours": 24.0,
        },
    ]


async def test_csv_has_a_line_per_row_when_asked_for(
    reports: httpx.AsyncClient,
) -> None:
    answer = await reports.get(
        "/v1/reports/sales", params=NOVEMBER, headers={"Accept": "text/csv"}
    )

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert (
        "sales-channel-2025-11-01-2025-11-30.csv"
        in (answer.headers["content-disposition"])
    )
    assert answer.text == (
        "group,currency,orders,units,revenue,average_order_value\n"
        "marketplace,EUR,1,1,40.00,40.00\n"
        "web,EUR,2,4,35.00,17.50\n"
        "web,GBP,1,3,27.00,27.00\n"
    )


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("sales", {"tz": "Mars/Olympus_Mons"}, "tz"),
        ("sales", {"from": "2025-12-01", "to": "2025-11-01"}, "from"),
        ("sales", {"from": "yesterday"}, "from"),
        ("sales", {"group_by": "hour"}, "group_by"),
        ("sales", {"to": "0001-01-01"}, "to"),
        ("sales", {"to": "2025-02-30"}, "to"),
        ("sales", {"to": "0"}, "to"),
        ("top-sellers", {"limit": "0"}, "limit"),
        ("slow-movers", {"days": "-1"}, "days"),
        ("stock", {"warehouse": "../etc"}, "warehouse"),
        ("lead-times", {"tz": "x" * 100}, "tz"),
    ],
)
async def test_bad_parameters_are_422_problems(
    reports: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    answer = await reports.get(f"/v1/reports/{path}", params=params)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["type"] == "/problems/validation-error"
    assert [error["field"] for error in problem["errors"]] == [field]


async def test_integrators_may_not_read_reports(
    reports_keys: tuple[httpx.AsyncClient, dict[Role, str]],
) -> None:
    http, keys = reports_keys
    answer = await http.get(
        "/v1/reports/sales",
        params=NOVEMBER,
        headers={"Authorization": f"Bearer {keys[Role.INTEGRATOR]}"},
    )

    assert answer.status_code == 403
    assert answer.json()["type"] == "/problems/forbidden"
