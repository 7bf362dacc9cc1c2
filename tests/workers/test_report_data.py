"""The reports' generated data set: consistent, and the benchmark runs over it."""

from datetime import UTC, datetime, timedelta

import psycopg

from db import reports
from db.engine import create_engine
from models.reports import SalesGrouping
from tests.helpers import scratch_database
from workers import bench_reports
from workers.report_data import generate

ORDERS = 2_000


async def test_generated_orders_add_up_and_every_report_runs_over_them(
    database_url: str,
) -> None:
    today = datetime.now(UTC).date()
    window = reports.Window(today - timedelta(days=364), today, "UTC")
    with scratch_database(database_url) as url:
        generated = generate(url, ORDERS, seed=7)
        with psycopg.connect(url) as conn:
            mismatched = conn.execute(
                "SELECT count(*) FROM orders o WHERE o.units <> (SELECT"
                " coalesce(sum(quantity), 0) FROM order_lines WHERE order_id = o.id)"
                " OR o.subtotal_minor <> (SELECT coalesce(sum(total_minor), 0)"
                " FROM order_lines WHERE order_id = o.id)"
            ).fetchone()
            statuses: dict[str, int] = dict(
                conn.execute(
                    "SELECT status, count(*) FROM orders GROUP BY 1"
                ).fetchall()
            )
            currencies = conn.execute(
                "SELECT count(DISTINCT currency) FROM orders"
            ).fetchone()
            # Placed in the year the benchmark reports on, and not cancelled
            # or failed.
            counted = conn.execute(
                "SELECT count(*), sum(units) FROM orders WHERE created_at >= %s"
                " AND status NOT IN ('cancelled', 'failed')",
                (datetime.combine(window.start, datetime.min.time(), UTC),),
            ).fetchone()
        engine = create_engine(url, pool_size=1)
        async with engine.connect() as conn:
            by_channel = await reports.sales(conn, window, SalesGrouping.CHANNEL)
        await engine.dispose()
        figures = await bench_reports.measure(url, repeats=1, days=365)
        plans = bench_reports.explain(url, window)

    rows = generated["rows"]
    assert rows["orders"] == ORDERS
    assert ORDERS < rows["order_lines"] < 4 * ORDERS
    assert 0 < rows["returns"] < rows["shipments"] < ORDERS
    assert mismatched == (0,)
    assert statuses["cancelled"] > 0 and statuses["failed"] > 0
    assert statuses["completed"] > ORDERS / 2
    assert currencies == (4,)
    assert counted == (
        sum(row.orders for row in by_channel),
        sum(row.units for row in by_channel),
    )
    assert len({row.group for row in by_channel}) == 4
    assert set(figures) >= {"sales by channel", "slow movers", "lead times"}
    assert figures["slow movers"]["rows"] > 0
    assert "Execution Time" in plans["sales by channel"]
