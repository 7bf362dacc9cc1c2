"""Stock: reserve an order's lines in one warehouse, release or consume them.

A reservation is one transaction per warehouse: every line is reserved there or
none is. Stock rows are locked in SKU order so two orders never deadlock, and
the CHECK on stock_levels is the last guard against overselling.
"""

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.inventory import Reservation as ReservationRow
from db.inventory import ReservationState, StockLevel, Warehouse
from db.orders import append_event
from models.errors import FailureType
from models.inventory import (
    ReleaseStock,
    Reservation,
    ReserveStock,
    StockLine,
    StockReleased,
)


class _WarehouseShort(Exception):
    """Another order took the stock between choosing a warehouse and reserving."""


async def lock_order(conn: AsyncConnection, order_id: str) -> None:
    """Serialize stock changes of one order (a retried activity may overlap)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"stock:{order_id}"},
    )


async def _candidate_warehouses(
    conn: AsyncConnection, lines: Sequence[StockLine]
) -> list[str]:
    """Warehouses that can ship every line now, best priority first."""
    wanted: dict[str, int] = defaultdict(int)
    for line in lines:
        wanted[line.sku] += line.quantity
    rows = await conn.execute(
        select(
            StockLevel.warehouse,
            StockLevel.sku,
            (StockLevel.on_hand - StockLevel.reserved).label("available"),
        )
        .join(Warehouse, Warehouse.code == StockLevel.warehouse)
        .where(StockLevel.sku.in_(wanted))
        .order_by(Warehouse.priority, Warehouse.code)
    )
    available: dict[str, dict[str, int]] = {}
    for warehouse, sku, units in rows:
        available.setdefault(warehouse, {})[sku] = units
    return [
        warehouse
        for warehouse, stock in available.items()
        if all(stock.get(sku, 0) >= units for sku, units in wanted.items())
    ]


async def _reserve_in(
    conn: AsyncConnection, order_id: str, warehouse: str, lines: Sequence[StockLine]
) -> None:
    for line in sorted(lines, key=lambda line: (line.sku, line.line)):
        taken = await conn.execute(
            update(StockLevel)
            .where(StockLevel.sku == line.sku, StockLevel.warehouse == warehouse)
            .where(StockLevel.on_hand - StockLevel.reserved >= line.quantity)
            .values(reserved=StockLevel.reserved + line.quantity)
        )
        if taken.rowcount != 1:
            raise _WarehouseShort(warehouse)
    await conn.execute(
        insert(ReservationRow),
        [
            {
                "order_id": order_id,
                "line": line.line,
                "sku": line.sku,
                "warehouse": warehouse,
                "quantity": line.quantity,
            }
            for line in lines
        ],
    )


async def consume_reservations(
    conn: AsyncConnection, order_id: str, warehouse: str, lines: Sequence[int]
) -> int:
    """Take shipped units off the shelf: on hand and reserved both go down."""
    await lock_order(conn, order_id)
    consumed = await conn.execute(
        update(ReservationRow)
        .where(
            ReservationRow.order_id == order_id,
            ReservationRow.warehouse == warehouse,
            ReservationRow.line.in_(lines),
            ReservationRow.state == ReservationState.RESERVED,
        )
        .values(state=ReservationState.SHIPPED)
        .returning(ReservationRow.sku, ReservationRow.quantity)
    )
    units = 0
    for sku, quantity in sorted(consumed.all()):
        await conn.execute(
            update(StockLevel)
            .where(StockLevel.sku == sku, StockLevel.warehouse == warehouse)
            .values(
                on_hand=StockLevel.on_hand - quantity,
                reserved=StockLevel.reserved - quantity,
            )
        )
        units += quantity
    return units


class InventoryActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    async def reserve_stock(self, request: ReserveStock) -> Reservation:
        """Reserve every line in the first warehouse (by priority) that has it all."""
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            held = await self._held(conn, request.order_id)
            if held is not None:
                return held
            for warehouse in await _candidate_warehouses(conn, request.lines):
                try:
                    async with conn.begin_nested():
                        await _reserve_in(
                            conn, request.order_id, warehouse, request.lines
                        )
                except _WarehouseShort:
                    activity.logger.info(
                        "order %s: stock in %s went to another order, trying next",
                        request.order_id,
                        warehouse,
                    )
                    continue
                units = sum(line.quantity for line in request.lines)
                await append_event(
                    conn,
                    order_id=request.order_id,
                    event_id=request.event_id,
                    at=request.at,
                    type="stock.reserved",
                    message=f"{units} units reserved in warehouse {warehouse}",
                    data={"warehouse": warehouse, "units": units},
                )
                activity.logger.info(
                    "order %s: %s units reserved in %s",
                    request.order_id,
                    units,
                    warehouse,
                )
                return Reservation(warehouse=warehouse, lines=request.lines)
        raise ApplicationError(
            "no warehouse has every line of the order in stock",
            type=FailureType.OUT_OF_STOCK,
            non_retryable=True,
        )

    @activity.defn
    async def release_stock(self, request: ReleaseStock) -> StockReleased:
        """Give back everything the order still holds; safe to repeat."""
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            released = await conn.execute(
                update(ReservationRow)
                .where(
                    ReservationRow.order_id == request.order_id,
                    ReservationRow.state == ReservationState.RESERVED,
                )
                .values(state=ReservationState.RELEASED)
                .returning(
                    ReservationRow.sku,
                    ReservationRow.warehouse,
                    ReservationRow.quantity,
                )
            )
            units = 0
            for sku, warehouse, quantity in sorted(released.all()):
                await conn.execute(
                    update(StockLevel)
                    .where(StockLevel.sku == sku, StockLevel.warehouse == warehouse)
                    .values(reserved=StockLevel.reserved - quantity)
                )
                units += quantity
            if units:
                await append_event(
                    conn,
                    order_id=request.order_id,
                    event_id=request.event_id,
                    at=request.at,
                    type="stock.released",
                    message=f"{units} reserved units released: {request.reason}",
                    data={"units": units, "reason": request.reason},
                )
        activity.logger.info("order %s: %s units released", request.order_id, units)
        return StockReleased(units=units)

    async def _held(self, conn: AsyncConnection, order_id: str) -> Reservation | None:
        rows = (
            await conn.execute(
                select(
                    ReservationRow.line,
                    ReservationRow.sku,
                    ReservationRow.quantity,
                    ReservationRow.warehouse,
                )
                .where(
                    ReservationRow.order_id == order_id,
                    ReservationRow.state == ReservationState.RESERVED,
                )
                .order_by(ReservationRow.line)
            )
        ).all()
        if not rows:
            return None
        return Reservation(
            warehouse=rows[0].warehouse,
            lines=[
                StockLine(line=r.line, sku=r.sku, quantity=r.quantity) for r in rows
            ],
        )
