"""Reports for managers, as JSON or (with `Accept: text/csv`) as CSV.

Reports span every channel and warehouse, so integrators (bound to one
channel) may not read them; viewers, support staff and admins may, and
warehouse staff may read the stock report.
"""

import csv
import io
import zoneinfo
from datetime import date, datetime, timedelta
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from api.access import Caller, allow
from api.deps import ConnectionDep
from api.errors import invalid
from db import reports
from models.money import Money
from models.reports import (
    CancellationsReport,
    LeadTimesReport,
    Period,
    ReturnRatesReport,
    ReturnReasonsReport,
    SalesGrouping,
    SalesReport,
    SlowMoversReport,
    StockReport,
    TopSellersReport,
)
from models.rules import Role
from models.spreadsheet import text_cell

router = APIRouter(prefix="/reports", tags=["reports"])

ReportReader = Annotated[Caller, Depends(allow(Role.VIEWER, Role.SUPPORT, Role.ADMIN))]
StockReader = Annotated[
    Caller, Depends(allow(Role.VIEWER, Role.SUPPORT, Role.ADMIN, Role.WAREHOUSE))
]
CSV = "text/csv"
DEFAULT_DAYS = 30
# Dates PostgreSQL and Python both handle in every time zone.
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)
ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {CSV: {"schema": {"type": "string"}}},
        "description": "The report; as CSV (one line per row) with `Accept: text/csv`",
    }
}
Limit = Annotated[int, Query(ge=1, le=10_000, description="rows at most")]


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def period(
    start: Annotated[
        str | None,
        Query(
            alias="from",
            pattern=DAY,
            description="first day, e.g. 2026-11-01 "
            f"(default: {DEFAULT_DAYS - 1} days before `to`)",
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            pattern=DAY,
            description="last day, included (default: today in `tz`)",
        ),
    ] = None,
    tz: Annotated[
        str,
        Query(
            max_length=64,
            description="IANA time zone the days are counted in, e.g. Europe/Berlin",
        ),
    ] = "UTC",
) -> reports.Window:
    if tz not in _time_zones():
        raise invalid("tz", f"{tz!r} is not an IANA time zone")
    last = _day("to", end) if end else datetime.now(zoneinfo.ZoneInfo(tz)).date()
    first = (
        _day("from", start)
        if start
        else max(EARLIEST, last - timedelta(days=DEFAULT_DAYS - 1))
    )
    if first > last:
        raise invalid("from", "must be on or before `to`")
    return reports.Window(first, last, tz)


def _day(field: str, text: str) -> date:
    """An ISO date (only that: no timestamps, no numbers), within range."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"{text!r} is not a date") from None
    if not EARLIEST <= day <= LATEST:
        raise invalid(field, f"must be between {EARLIEST} and {LATEST}")
    return day


WindowDep = Annotated[reports.Window, Depends(period)]


def _period(window: reports.Window) -> Period:
    return Period(from_=window.start, to=window.end, tz=window.tz)


def _answer(
    request: Request, report: BaseModel, rows: list[Any], name: str
) -> Response | Any:
    """The report itself (JSON), or its rows as CSV if the caller asks for it."""
    if CSV not in request.headers.get("accept", ""):
        return report
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(type(rows[0]).model_fields) if rows else []
    writer.writerow(columns)
    for row in rows:
        writer.writerow(_cell(getattr(row, column)) for column in columns)
    return Response(
        out.getvalue(),
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _cell(value: Any) -> Any:
    if isinstance(value, Money):
        return value.amount
    if isinstance(value, str):
        return text_cell(value)
    return "" if value is None else value


def _named(report: str, window: reports.Window) -> str:
    return f"{report}-{window.start}-{window.end}"


@router.get("/sales", response_model=SalesReport, responses=ANSWERS)
async def sales_report(
    request: Request,
    conn: ConnectionDep,
    caller: ReportReader,
    window: WindowDep,
    group_by: SalesGrouping = SalesGrouping.CHANNEL,
) -> Any:
    """Orders, units, revenue and average order value per group and currency.

    Counted: orders placed in the period (their `created_at`, in `tz`) except
    those `cancelled` or `failed`. Units are what is left of each line after
    cancelled units; revenue is those units' value (goods only: no delivery
    charge, refunds not taken off); the average order value is revenue /
    orders. `region` is the shipping country; `category` counts an order once
    in each category it has units of; `week` starts on Monday.
    """
    rows = await reports.sales(conn, window, group_by)
    report = SalesReport(period=_period(window), group_by=group_by, rows=rows)
    return _answer(request, report, rows, _named(f"sales-{group_by}", window))


@router.get("/top-sellers", response_model=TopSellersReport, responses=ANSWERS)
async def top_sellers_report(
    request: Request,
    conn: ConnectionDep,
    caller: ReportReader,
    window: WindowDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="SKUs at most")] = 20,
) -> Any:
    """The SKUs that sold the most units in the period, one row per currency.

    Counted as in the sales report; ranked by units in every currency together.
    """
    rows = await reports.top_sellers(conn, window, limit)
    report = TopSellersReport(period=_period(window), rows=rows)
    return _answer(request, report, rows, _named("top-sellers", window))


@router.get("/slow-movers", response_model=SlowMoversReport, responses=ANSWERS)
async def slow_movers_report(
    request: Request,
    conn: ConnectionDep,
    caller: ReportReader,
    days: Annotated[
        int, Query(ge=1, le=3650, description="the sales window, up to now")
    ] = 30,
    cover_days: Annotated[
        int, Query(ge=1, le=36_500, description="days of cover that make it slow")
    ] = 90,
    limit: Limit = 100,
) -> Any:
    """SKUs in stock that sold nothing in the last `days` days, or whose stock
    (on hand - reserved, in every warehouse) lasts `cover_days` or more at the
    rate they sold at; those with no sales first, then the most days of cover.
    """
    rows = await reports.slow_movers(conn, days, cover_days, limit)
    report = SlowMoversReport(days=days, cover_days=cover_days, rows=rows)
    return _answer(request, report, rows, f"slow-movers-{days}d")


@router.get("/stock", response_model=StockReport, responses=ANSWERS)
async def stock_report(
    request: Request,
    conn: ConnectionDep,
    caller: StockReader,
    low_stock_units: Annotated[
        int, Query(ge=0, le=1_000_000, description="low stock at or below")
    ] = 10,
    warehouse: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
    ] = None,
    low_only: bool = False,
    limit: Limit = 10_000,
) -> Any:
    """Stock per warehouse and SKU; flagged low when the units available (on
    hand - reserved - safety stock) are `low_stock_units` or fewer."""
    rows = await reports.stock(
        conn,
        low_stock_units=low_stock_units,
        warehouse=warehouse,
        low_only=low_only,
        limit=limit,
    )
    report = StockReport(low_stock_units=low_stock_units, rows=rows)
    return _answer(request, report, rows, "stock")


@router.get("/cancellations", response_model=CancellationsReport, responses=ANSWERS)
async def cancellations_report(
    request: Request, conn: ConnectionDep, caller: ReportReader, window: WindowDep
) -> Any:
    """Orders placed in the period and cancelled whole, per reason and
    currency, with their value (goods and delivery)."""
    rows = await reports.cancellations(conn, window)
    report = CancellationsReport(period=_period(window), rows=rows)
    return _answer(request, report, rows, _named("cancellations", window))


@router.get("/returns", response_model=ReturnReasonsReport, responses=ANSWERS)
async def return_reasons_report(
    request: Request, conn: ConnectionDep, caller: ReportReader, window: WindowDep
) -> Any:
    """Returns opened in the period, per reason and currency: how many, the
    units asked back, the money refunded so far. Rejected and expired returns
    are left out."""
    rows = await reports.return_reasons(conn, window)
    report = ReturnReasonsReport(period=_period(window), rows=rows)
    return _answer(request, report, rows, _named("returns", window))


@router.get("/return-rates", response_model=ReturnRatesReport, responses=ANSWERS)
async def return_rates_report(
    request: Request,
    conn: ConnectionDep,
    caller: ReportReader,
    window: WindowDep,
    limit: Limit = 100,
) -> Any:
    """Per SKU: units sold in orders placed in the period (counted as in the
    sales report) and units returned from those orders (rejected and expired
    returns left out); highest return rate first."""
    rows = await reports.return_rates(conn, window, limit)
    report = ReturnRatesReport(period=_period(window), rows=rows)
    return _answer(request, report, rows, _named("return-rates", window))


@router.get("/lead-times", response_model=LeadTimesReport, responses=ANSWERS)
async def lead_times_report(
    request: Request, conn: ConnectionDep, caller: ReportReader, window: WindowDep
) -> Any:
    """Per warehouse and carrier, for parcels handed over in the period: hours
    from the order to hand-over, and from hand-over to delivery, p50 and p90."""
    rows = await reports.lead_times(conn, window)
    report = LeadTimesReport(period=_period(window), rows=rows)
    return _answer(request, report, rows, _named("lead-times", window))
