"""`oms bench --scenario reports`: how fast the reports answer on a big read model.

It starts a PostgreSQL of its own (embedded, in a fresh folder that is removed
afterwards), migrates it, generates the orders (workers/report_data.py), then
runs every report the way its route does, warm: once to warm the caches, then
`repeats` times, and gives p50 and p95 per report, over the last year (every
order generated) and over the last 30 days, with the plans PostgreSQL chose
for the two that must stay well under a second over the year.
"""

import asyncio
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection

from db import reports
from db.engine import create_engine
from db.migrate import upgrade
from models.reports import SalesGrouping
from workers.embedded import embedded_postgres
from workers.report_data import generate

logger = logging.getLogger(__name__)

Report = Callable[[AsyncConnection], Awaitable[list[Any]]]


WINDOWS = (365, 30)


def _window(days: int) -> reports.Window:
    """The last `days` days up to today, in UTC."""
    today = datetime.now(UTC).date()
    return reports.Window(today - timedelta(days=days - 1), today, "UTC")


def _reports(window: reports.Window) -> dict[str, Report]:
    """Each report as its route runs it, over `window`."""

    def sales(grouping: SalesGrouping) -> Report:
        return lambda conn: reports.sales(conn, window, grouping)

    found = {f"sales by {grouping}": sales(grouping) for grouping in SalesGrouping}
    return found | {
        "top sellers": lambda conn: reports.top_sellers(conn, window, 20),
        "slow movers": lambda conn: reports.slow_movers(conn, 30, 90, 100),
        "stock": lambda conn: reports.stock(
            conn, low_stock_units=10, warehouse=None, low_only=False, limit=10_000
        ),
        "cancellations": lambda conn: reports.cancellations(conn, window),
        "returns by reason": lambda conn: reports.return_reasons(conn, window),
        "return rates": lambda conn: reports.return_rates(conn, window, 100),
        "lead times": lambda conn: reports.lead_times(conn, window),
    }


def _quantile(samples: list[float], quantile: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))
    return round(ordered[index] * 1000, 1)


async def measure(database_url: str, repeats: int, days: int) -> dict[str, Any]:
    """p50 and p95 in milliseconds of each report over the last `days` days,
    warm, one call at a time."""
    window = _window(days)
    engine = create_engine(database_url, pool_size=1)
    figures: dict[str, Any] = {}
    try:
        async with engine.connect() as conn:
            for name, report in _reports(window).items():
                rows = await report(conn)
                samples = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    await report(conn)
                    samples.append(time.perf_counter() - began)
                figures[name] = {
                    "rows": len(rows),
                    "p50_ms": _quantile(samples, 0.5),
                    "p95_ms": _quantile(samples, 0.95),
                }
                sys.stderr.write(f"{days} days, {name:<22} {figures[name]}\n")
    finally:
        await engine.dispose()
    return figures


def explain(database_url: str, window: reports.Window) -> dict[str, str]:
    """EXPLAIN ANALYZE of the sales-by-channel and slow-mover queries."""
    queries = {
        "sales by channel": (
            reports.sales_sql(SalesGrouping.CHANNEL),
            window.params(),
        ),
        "slow movers": (
            reports.SLOW_MOVERS_SQL,
            {"days": 30, "cover_days": 90, "limit": 100},
        ),
    }
    plans = {}
    with psycopg.connect(database_url) as conn:
        for name, (sql, params) in queries.items():
            # The SQL uses SQLAlchemy's :name parameters; psycopg's are %(name)s.
            for key in sorted(params, key=len, reverse=True):
                sql = sql.replace(f":{key}", f"%({key})s")
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            plans[name] = "\n".join(str(row[0]) for row in rows)
    return plans


def run(orders: int, seed: int, repeats: int) -> dict[str, Any]:
    """Generate `orders` in a PostgreSQL of its own, measure, clean up."""
    folder = Path(tempfile.mkdtemp(prefix="oms-bench-reports-"))
    try:
        with embedded_postgres(folder / "postgres") as url:
            upgrade(url)
            generated = generate(url, orders, seed)
            figures = {
                f"{days} days": asyncio.run(measure(url, repeats, days))
                for days in WINDOWS
            }
            plans = explain(url, _window(WINDOWS[0]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "scenario": "reports",
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": sys.version.split()[0],
        },
        "orders": orders,
        "repeats": repeats,
        "generated": generated,
        "latency_ms": figures,
        "plans": plans,
    }


def table(results: dict[str, Any]) -> str:
    """The latencies as a Markdown table, and the rows generated."""
    windows = list(results["latency_ms"])
    lines = [
        "| report | " + " | ".join(f"{w}: rows, p50 / p95 ms" for w in windows) + " |",
        "|---|" + "---:|" * len(windows),
    ]
    for name in results["latency_ms"][windows[0]]:
        cells = [results["latency_ms"][w][name] for w in windows]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{c['rows']}, {c['p50_ms']} / {c['p95_ms']}" for c in cells)
            + " |"
        )
    generated = results["generated"]
    counts = ", ".join(f"{k} {v}" for k, v in generated["rows"].items())
    return "\n".join(lines) + f"\n\ngenerated in {generated['seconds']} s: {counts}"
