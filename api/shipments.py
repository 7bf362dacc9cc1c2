"""Shipments: warehouse staff list their work and confirm picking and packing.

A confirmation is an update of the shipment's workflow: its validator refuses
what does not fit the parcel's state (409) or its lines (422) before anything
happens, and the answer is the shipment as it is afterwards, with the package
code once packed.
"""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from api.access import Caller, allow
from api.deps import ConnectionDep, Services, ServicesDep
from api.errors import ProblemDetails, not_found
from api.paging import decode_cursor, encode_cursor
from api.read_model import load_shipments
from api.updates import run_update
from db.shipping import Shipment
from models.catalog import Page
from models.orders import Contract, workflow_id_for
from models.rules import Role
from models.shipping import (
    PackConfirmation,
    PickConfirmation,
    ShipmentLine,
    ShipmentState,
    ShipmentStatus,
)
from workers.logs import bind_order

logger = logging.getLogger(__name__)

router = APIRouter(tags=["shipments"])

ShipmentReader = Annotated[
    Caller,
    Depends(allow(Role.WAREHOUSE, Role.SUPPORT, Role.ADMIN, Role.VIEWER)),
]
WarehouseStaff = Annotated[Caller, Depends(allow(Role.WAREHOUSE, Role.ADMIN))]
ShipmentId = Annotated[
    str,
    Path(pattern=r"^[0-9a-fA-F-]{36}$", description="the shipment's id (UUID)"),
]
ANSWERS: dict[int | str, dict[str, object]] = {
    404: {"model": ProblemDetails, "description": "Unknown shipment"},
    409: {"model": ProblemDetails, "description": "Refused in the shipment's state"},
}


class ShipmentPublic(ShipmentState):
    order_id: str


class LineFound(Contract):
    line: int = Field(ge=1)
    quantity: int = Field(ge=0, le=10_000, description="units found on the shelf")


class PickedRequest(Contract):
    """Body of `POST /v1/shipments/{id}/picked`."""

    found: list[LineFound] | None = Field(
        default=None,
        max_length=100,
        description="units found per line, when fewer than asked were there; "
        "leave out when every unit was found",
    )


class PackedRequest(Contract):
    """Body of `POST /v1/shipments/{id}/packed`."""

    weight_grams: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="the parcel's weight; else the products' weights added up",
    )


@router.get("/shipments")
async def list_shipments(
    conn: ConnectionDep,
    caller: ShipmentReader,
    warehouse: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
    status: ShipmentStatus | None = None,
    late: Annotated[
        bool | None, Query(description="only parcels with no news for too long")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ShipmentPublic]:
    """Shipments by warehouse, status and lateness, oldest first: a warehouse's
    work list, or the parcels to chase with their carrier."""
    query = select(Shipment).order_by(Shipment.created_at, Shipment.id)
    if warehouse is not None:
        query = query.where(Shipment.warehouse == warehouse)
    if status is not None:
        query = query.where(Shipment.status == status)
    if late is not None:
        query = query.where(Shipment.late == late)
    if cursor is not None:
        created_at, shipment_id = decode_cursor(cursor)
        query = query.where(
            tuple_(Shipment.created_at, Shipment.id) > (created_at, shipment_id)
        )
    rows = await load_shipments(conn, query.limit(limit + 1))
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1][0].created_at, page[-1][0].id)
        if len(rows) > limit
        else None
    )
    return Page(
        items=[_public(row.order_id, state) for row, state in page],
        next_cursor=next_cursor,
    )


@router.get("/shipments/{shipment_id}", responses={404: ANSWERS[404]})
async def get_shipment(
    shipment_id: ShipmentId, conn: ConnectionDep, caller: ShipmentReader
) -> ShipmentPublic:
    """One shipment with its lines, package code and tracking number."""
    row, state = await _find(conn, shipment_id)
    return _public(row.order_id, state)


@router.post("/shipments/{shipment_id}/picked", responses=ANSWERS)
async def confirm_picked(
    shipment_id: ShipmentId,
    body: PickedRequest,
    services: ServicesDep,
    caller: WarehouseStaff,
) -> ShipmentPublic:
    """Picking is done: every unit, or those in `found` (a short pick)."""
    found = None
    if body.found is not None:
        found = [
            ShipmentLine(line=item.line, sku="", quantity=item.quantity)
            for item in body.found
        ]
    confirmation = PickConfirmation(actor=caller.actor, found=found)
    return await _confirm(services, shipment_id, "pick", confirmation)


@router.post("/shipments/{shipment_id}/packed", responses=ANSWERS)
async def confirm_packed(
    shipment_id: ShipmentId,
    body: PackedRequest,
    services: ServicesDep,
    caller: WarehouseStaff,
) -> ShipmentPublic:
    """The parcel is packed (and weighed): it gets its package code."""
    confirmation = PackConfirmation(actor=caller.actor, weight_grams=body.weight_grams)
    return await _confirm(services, shipment_id, "pack", confirmation)


async def _confirm(
    services: Services,
    shipment_id: str,
    action: str,
    confirmation: PickConfirmation | PackConfirmation,
) -> ShipmentPublic:
    async with services.engine.connect() as conn:
        row, _ = await _find(conn, shipment_id)
    workflow_id = f"{workflow_id_for(row.order_id)}-shipment-{row.number}"
    bind_order(str(row.order_id), workflow_id)
    handle = services.temporal.get_workflow_handle(workflow_id)

    async def closed() -> tuple[str, str]:
        async with services.engine.connect() as conn:
            _, state = await _find(conn, shipment_id)
        return "shipment-closed", f"the shipment is {state.status}"

    state = await run_update(
        handle,
        action,
        confirmation,
        ShipmentState,
        idempotency_key=None,
        closed=closed,
        unprocessable=frozenset({"invalid-lines"}),
    )
    logger.info(
        "shipment %s: %s confirmed by %s", row.number, action, confirmation.actor
    )
    return _public(row.order_id, state)


async def _find(
    conn: AsyncConnection, shipment_id: str
) -> tuple[Shipment, ShipmentState]:
    rows = await load_shipments(
        conn, select(Shipment).where(Shipment.id == shipment_id)
    )
    if not rows:
        raise not_found("shipment", shipment_id)
    return rows[0]


def _public(order_id: str, state: ShipmentState) -> ShipmentPublic:
    return ShipmentPublic(order_id=str(order_id), **state.model_dump())
