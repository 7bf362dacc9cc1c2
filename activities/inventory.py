"""Stock: reserve an order's lines where the broker says, release or consume them.

A reservation is one transaction: every line is reserved as planned or none
is. Stock rows are locked in (SKU, warehouse) order so two orders never
deadlock, and
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
from db.inventory import ReservationState, StockLevel, StockMovement, Warehouse
from db.orders import OrderEvent, append_event
from models.broker import Stock, WarehouseProfile, plan_sourcing
from models.errors import FailureType
from models.inventory import (
    Allocation,
    Destination,
    OrderRef,
    ReleaseLines,
    ReleaseStock,
    Reservation,
    ReserveStock,
    StockHeld,
    StockLine,
    StockReleased,
    WriteOffShort,
)

_PLANNING_ATTEMPTS = 5


class _WarehouseShort(Exception):
    """Another order took the stock between choosing a warehouse and reserving."""


async def lock_order(conn: AsyncConnection, order_id: str) -> None:
    """Serialize stock changes of one order (a retried activity may overlap)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"stock:{order_id}"},
    )


async def _stock_and_warehouses(
    conn: AsyncConnection, request: ReserveStock
) -> tuple[Stock, list[WarehouseProfile]]:
    """What each warehouse that may ship the order can promise of its SKUs."""
    query = (
        select(
            Warehouse.code,
            Warehouse.country,
            Warehouse.region,
            Warehouse.priority,
            StockLevel.sku,
            (StockLevel.on_hand - StockLevel.reserved - StockLevel.safety_stock).label(
                "available"
            ),
        )
        .join(Warehouse, Warehouse.code == StockLevel.warehouse)
        .where(
            StockLevel.sku.in_({line.sku for line in request.lines}),
            Warehouse.ships_parcels,
        )
    )
    if request.warehouses is not None:
        query = query.where(Warehouse.code.in_(request.warehouses))
    if request.exclude:
        query = query.where(Warehouse.code.not_in(request.exclude))
    stock: Stock = {}
    profiles: dict[str, WarehouseProfile] = {}
    for row in await conn.execute(query):
        profiles[row.code] = WarehouseProfile(
            code=row.code, country=row.country, region=row.region, priority=row.priority
        )
        stock.setdefault(row.code, {})[row.sku] = max(0, row.available)
    return stock, list(profiles.values())


async def _reserve(
    conn: AsyncConnection, order_id: str, allocations: Sequence[Allocation]
) -> None:
    """Reserve every allocation; rows are taken in (SKU, warehouse) order."""
    wanted = sorted(
        (line.sku, allocation.warehouse, line.line, line.quantity)
        for allocation in allocations
        for line in allocation.lines
    )
    for sku, warehouse, _, quantity in wanted:
        taken = await conn.execute(
            update(StockLevel)
            .where(StockLevel.sku == sku, StockLevel.warehouse == warehouse)
            .where(
                StockLevel.on_hand - StockLevel.reserved - StockLevel.safety_stock
                >= quantity
            )
            .values(reserved=StockLevel.reserved + quantity)
        )
        if taken.rowcount != 1:
            raise _WarehouseShort(warehouse)
    # A line released earlier (an amendment) is reserved again in its old row.
    rows = insert(ReservationRow).values(
        [
            {
                "order_id": order_id,
                "line": line,
                "sku": sku,
                "warehouse": warehouse,
                "quantity": quantity,
            }
            for sku, warehouse, line, quantity in wanted
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


async def _reserve_planned(
    conn: AsyncConnection, request: ReserveStock
) -> Reservation | None:
    """Reserve the lines where the broker says; None if stock cannot cover them.

    Another order may take the stock between planning and reserving (the
    UPDATE's guard sees it): then plan again on what is left.
    """
    to = request.destination or Destination(country="")
    for _ in range(_PLANNING_ATTEMPTS):
        stock, warehouses = await _stock_and_warehouses(conn, request)
        plan = plan_sourcing(
            request.lines, stock, warehouses, to, max(1, request.max_shipments)
        )
        if plan is None:
            return None
        try:
            async with conn.begin_nested():
                await _reserve(conn, request.order_id, plan.allocations)
        except _WarehouseShort as short:
            activity.logger.info(
                "order %s: stock in %s went to another order, planning again",
                request.order_id,
                short,
            )
            continue
        # In line order, as `_held` reads them back.
        allocations = sorted(
            plan.allocations, key=lambda a: min(line.line for line in a.lines)
        )
        return Reservation(
            warehouse=allocations[0].warehouse,
            lines=sorted(request.lines, key=lambda line: line.line),
            allocations=allocations,
            reason=plan.reason,
        )
    return None


def _describe(reservation: Reservation) -> str:
    parts = []
    for allocation in reservation.shipments:
        units = sum(line.quantity for line in allocation.lines)
        numbers = ", ".join(str(line.line) for line in allocation.lines)
        parts.append(f"{units} in {allocation.warehouse} (lines {numbers})")
    return "; ".join(parts)


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
    request: ReserveStock | ReleaseLines | WriteOffShort,
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


def _not_enough(request: ReserveStock) -> str:
    if request.max_shipments <= 1:
        return "no warehouse has every line of the order in stock"
    return (
        "the warehouses that may ship the order do not have its lines in stock "
        f"for at most {request.max_shipments} shipments"
    )


class InventoryActivities:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @activity.defn
    async def reserve_stock(self, request: ReserveStock) -> Reservation:
        """Reserve every line where the broker says, all or nothing."""
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            held = await self._held(conn, request.order_id)
            if held is not None:
                return held
            reservation = await _reserve_planned(conn, request)
            if reservation is not None:
                units = sum(line.quantity for line in request.lines)
                where = _describe(reservation)
                await append_event(
                    conn,
                    order_id=request.order_id,
                    event_id=request.event_id,
                    at=request.at,
                    type="stock.reserved",
                    message=f"{units} units reserved: {where}; {reservation.reason}",
                    data={
                        "warehouse": reservation.warehouse,
                        "units": units,
                        "allocations": [a.model_dump() for a in reservation.shipments],
                        "reason": reservation.reason,
                    },
                )
                activity.logger.info(
                    "order %s: %s units reserved: %s", request.order_id, units, where
                )
                return reservation
        raise ApplicationError(
            _not_enough(request),
            type=FailureType.OUT_OF_STOCK,
            non_retryable=True,
        )

    @activity.defn
    async def reserve_more(self, request: ReserveStock) -> Reservation:
        """Reserve more lines for an order that holds some already (a short pick
        re-sourced), never in a warehouse that holds any of these lines."""
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            before = (
                await conn.execute(
                    select(OrderEvent.data).where(OrderEvent.id == request.event_id)
                )
            ).scalar()
            if before is not None:
                return Reservation.model_validate(before["reservation"])
            holding = await conn.execute(
                select(ReservationRow.warehouse)
                .distinct()
                .where(
                    ReservationRow.order_id == request.order_id,
                    ReservationRow.line.in_([line.line for line in request.lines]),
                )
            )
            request = request.model_copy(
                update={"exclude": [*request.exclude, *holding.scalars()]}
            )
            reservation = await _reserve_planned(conn, request)
            if reservation is None:
                raise ApplicationError(
                    "no other warehouse has the missing units",
                    type=FailureType.OUT_OF_STOCK,
                    non_retryable=True,
                )
            units = sum(line.quantity for line in request.lines)
            await append_event(
                conn,
                order_id=request.order_id,
                event_id=request.event_id,
                at=request.at,
                type="stock.reserved",
                message=f"{units} more units reserved: {_describe(reservation)}",
                data={"units": units, "reservation": reservation.model_dump()},
            )
        return reservation

    @activity.defn
    async def write_off_short(self, request: WriteOffShort) -> None:
        """Units the pickers did not find: no longer reserved, no longer on hand."""
        units = sum(line.quantity for line in request.lines)
        async with self._engine.begin() as conn:
            await lock_order(conn, request.order_id)
            if not await _first_time(
                conn,
                request,
                "stock.short_picked",
                f"{units} units not found in {request.warehouse} for shipment "
                f"{request.shipment_number}: written off",
                {"units": units, "warehouse": request.warehouse},
            ):
                return
            for line in sorted(request.lines, key=lambda line: (line.sku, line.line)):
                await self._write_off(conn, request, line)
        activity.logger.info(
            "order %s: %s units short in %s written off",
            request.order_id,
            units,
            request.warehouse,
        )

    @staticmethod
    async def _write_off(
        conn: AsyncConnection, request: WriteOffShort, line: StockLine
    ) -> None:
        row = (
            await conn.execute(
                select(ReservationRow.id, ReservationRow.quantity).where(
                    ReservationRow.order_id == request.order_id,
                    ReservationRow.line == line.line,
                    ReservationRow.warehouse == request.warehouse,
                    ReservationRow.state == ReservationState.RESERVED,
                )
            )
        ).one()
        change: dict[str, Any] = (
            {"state": ReservationState.RELEASED}
            if line.quantity >= row.quantity
            else {"quantity": row.quantity - line.quantity}
        )
        await conn.execute(
            update(ReservationRow).where(ReservationRow.id == row.id).values(change)
        )
        after = (
            await conn.execute(
                update(StockLevel)
                .where(
                    StockLevel.sku == line.sku,
                    StockLevel.warehouse == request.warehouse,
                )
                .values(
                    on_hand=StockLevel.on_hand - line.quantity,
                    reserved=StockLevel.reserved - line.quantity,
                )
                .returning(StockLevel.on_hand)
            )
        ).scalar_one()
        await conn.execute(
            insert(StockMovement).values(
                sku=line.sku,
                warehouse=request.warehouse,
                delta=-line.quantity,
                on_hand_after=after,
                reason=f"short pick, shipment {request.shipment_number}",
                actor=request.actor,
            )
        )

    @activity.defn
    async def held_stock(self, request: OrderRef) -> StockHeld:
        """What the order holds now and has not shipped, per warehouse."""
        async with self._engine.connect() as conn:
            held = await self._held(conn, request.order_id)
        return StockHeld(allocations=[] if held is None else held.shipments)

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
            reservation = await _reserve_planned(conn, request)
            if reservation is None:
                raise ApplicationError(
                    "the amended order: " + _not_enough(request),
                    type=FailureType.OUT_OF_STOCK,
                    non_retryable=True,
                )
        activity.logger.info(
            "order %s: reservation replaced: %s",
            request.order_id,
            _describe(reservation),
        )
        return reservation

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
        by_warehouse: dict[str, list[StockLine]] = {}
        units: dict[tuple[int, str], int] = defaultdict(int)
        for r in rows:
            by_warehouse.setdefault(r.warehouse, []).append(
                StockLine(line=r.line, sku=r.sku, quantity=r.quantity)
            )
            units[(r.line, r.sku)] += r.quantity
        reason = (
            await conn.execute(
                select(OrderEvent.data["reason"].astext)
                .where(
                    OrderEvent.order_id == order_id,
                    OrderEvent.type == "stock.reserved",
                )
                .order_by(OrderEvent.at.desc())
                .limit(1)
            )
        ).scalar()
        return Reservation(
            warehouse=rows[0].warehouse,
            lines=[
                StockLine(line=line, sku=sku, quantity=quantity)
                for (line, sku), quantity in sorted(units.items())
            ],
            allocations=[
                Allocation(warehouse=warehouse, lines=lines)
                for warehouse, lines in by_warehouse.items()
            ],
            reason=reason,
        )
