"""Stock: reserve an order's lines in one warehouse, release or consume them.

A reservation is one transaction per warehouse: every line is reserved there or
none is. Stock rows are locked in SKU order so two orders never deadlock, and
the CHECK on stock_levels is the last guard against overselling.
"""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.inventory import Reservation as ReservationRow
from db.inventory import ReservationState, StockLevel, Warehouse
from db.orders import OrderEvent, append_event
from models.errors import FailureType
from models.inventory import (
    ReleaseLines,
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
    # A line released earlier (an amendment) is reserved again in its old row.
    rows = insert(ReservationRow).values(
        [
            {
                "order_id": order_id,
                "line": line.line,
                "sku": line.sku,
                "warehouse": warehouse,
                "quantity": line.quantity,
            }
            for line in lines
        ]
    )
    await conn.execute(
        rows.on_conflict_do_update(
            index_elements=["order_id", "line", "warehouse"],
            set_={
                "quantity": rows.excluded.quantity,
                "state": ReservationState.RESERVED,
                "updated_at": func.now(),
            },
        )
    )


async def _reserve_anywhere(
    conn: AsyncConnection, order_id: str, lines: Sequence[StockLine]
) -> str | None:
    """Reserve every line in the best warehouse that has them all; its code."""
    for warehouse in await _candidate_warehouses(conn, lines):
        try:
            async with conn.begin_nested():
                await _reserve_in(conn, order_id, warehouse, lines)
        except _WarehouseShort:
            activity.logger.info(
                "order %s: stock in %s went to another order, trying next",
                order_id,
                warehouse,
            )
            continue
        return warehouse
    return None


async def _release_all(conn: AsyncConnection, order_id: str) -> int:
    """Give back every unit the order holds; how many."""
    released = await conn.execute(
        update(ReservationRow)
        .where(
            ReservationRow.order_id == order_id,
            ReservationRow.state == ReservationState.RESERVED,
        )
        .values(state=ReservationState.RELEASED)
        .returning(
            ReservationRow.sku, ReservationRow.warehouse, ReservationRow.quantity
        )
    )
    units = 0
    for sku, warehouse, quantity in sorted(released.all()):
        await _unreserve(conn, sku, warehouse, quantity)
        units += quantity
    return units


async def _unreserve(
    conn: AsyncConnection, sku: str, warehouse: str, units: int
) -> None:
    await conn.execute(
        update(StockLevel)
        .where(StockLevel.sku == sku, StockLevel.warehouse == warehouse)
        .values(reserved=StockLevel.reserved - units)
    )


async def _first_time(
    conn: AsyncConnection,
    request: ReserveStock | ReleaseLines,
    event_type: str,
    message: str,
    data: dict[str, Any],
) -> bool:
    """Record the step on the timeline; False if it was recorded before.

    The event id is the step's idempotency key: a retried activity whose
    first run committed sees its event and does not apply the step again.
    """
    inserted = await conn.execute(
        insert(OrderEvent)
        .values(
            id=request.event_id,
            order_id=request.order_id,
            at=request.at,
            type=event_type,
            actor="system",
            message=message,
            data=data,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(OrderEvent.id)
    )
    return inserted.first() is not None


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
            warehouse = await _reserve_anywhere(conn, request.order_id, request.lines)
            if warehouse is not None:
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
            units = await _release_all(conn, request.order_id)
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

    @activity.defn
    async def replace_reservation(self, request: ReserveStock) -> Reservation:
        """Swap what the order holds for `request.lines`, all or nothing.

        Used by amendments: the old reservation is released and the new lines
        reserved in one transaction, so a refused amendment changes nothing.
        """
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            units = sum(line.quantity for line in request.lines)
            if not await _first_time(
                conn,
                request,
                "stock.re_reserved",
                f"reservation replaced: {units} units",
                {"units": units},
            ):
                held = await self._held(conn, request.order_id)
                assert held is not None, "a replaced reservation holds stock"
                return held
            await _release_all(conn, request.order_id)
            warehouse = await _reserve_anywhere(conn, request.order_id, request.lines)
            if warehouse is None:
                raise ApplicationError(
                    "no warehouse has every line of the amended order in stock",
                    type=FailureType.OUT_OF_STOCK,
                    non_retryable=True,
                )
        activity.logger.info(
            "order %s: reservation replaced, %s units in %s",
            request.order_id,
            units,
            warehouse,
        )
        return Reservation(warehouse=warehouse, lines=request.lines)

    @activity.defn
    async def release_lines(self, request: ReleaseLines) -> StockReleased:
        """Give back some units of some lines, once (a partial cancel)."""
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            units = sum(line.quantity for line in request.lines)
            if not await _first_time(
                conn,
                request,
                "stock.released",
                f"{units} reserved units released: {request.reason}",
                {"units": units, "reason": request.reason},
            ):
                return StockReleased(units=0)
            released = 0
            for line in sorted(request.lines, key=lambda line: line.line):
                released += await self._release_line(conn, request.order_id, line)
        activity.logger.info(
            "order %s: %s units released (%s)",
            request.order_id,
            released,
            request.reason,
        )
        return StockReleased(units=released)

    @staticmethod
    async def _release_line(
        conn: AsyncConnection, order_id: str, line: StockLine
    ) -> int:
        rows = await conn.execute(
            select(ReservationRow.id, ReservationRow.warehouse, ReservationRow.quantity)
            .where(
                ReservationRow.order_id == order_id,
                ReservationRow.line == line.line,
                ReservationRow.state == ReservationState.RESERVED,
            )
            .order_by(ReservationRow.id)
        )
        left = line.quantity
        for row_id, warehouse, quantity in rows.all():
            taken = min(left, quantity)
            if taken == quantity:
                change: dict[str, Any] = {"state": ReservationState.RELEASED}
            else:
                change = {"quantity": quantity - taken}
            await conn.execute(
                update(ReservationRow).where(ReservationRow.id == row_id).values(change)
            )
            await _unreserve(conn, line.sku, warehouse, taken)
            left -= taken
            if not left:
                break
        return line.quantity - left

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
