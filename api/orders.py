"""Orders: create, read, list and follow them on their timeline."""

import base64
import binascii
import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status
from sqlalchemy import Row, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ConnectionDep, Services, ServicesDep
from api.errors import Problem, ProblemDetails, not_found
from api.intake import find_by_reference, take_in
from db.orders import Order, OrderEvent, OrderLine
from db.shipping import Shipment, ShipmentLine
from models.catalog import Page
from models.money import Money
from models.orders import (
    Address,
    Customer,
    OrderCreate,
    OrderPublic,
    OrderState,
    OrderStatus,
    OrderSummary,
    PlaceOrder,
    TimelineEntry,
    workflow_id_for,
)
from models.orders import (
    OrderLine as OrderLineModel,
)
from models.shipping import ShipmentLine as ShipmentLineModel
from models.shipping import ShipmentState
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["orders"])

OrderRef = Annotated[
    str, Path(max_length=64, description="order id (UUID) or number (SO-000123)")
]
# A query needs a worker; without one, answer from the read model instead.
QUERY_TIMEOUT = timedelta(seconds=5)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown order"}
}


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": OrderPublic,
            "description": "The order this request created before",
        },
        404: {"model": ProblemDetails, "description": "Unknown SKU"},
    },
)
async def create_order(
    body: OrderCreate,
    response: Response,
    services: ServicesDep,
    conn: ConnectionDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> OrderPublic:
    """Take an order in and start its workflow; a repeated request returns it."""
    intake = await take_in(conn, body, idempotency_key)
    order = intake.order
    await _ensure_started(services, order)
    response.headers["Location"] = f"/v1/orders/{order.order_id}"
    if intake.created:
        logger.info(
            "order %s (%s) created from %s", order.order_id, order.number, order.channel
        )
        return OrderPublic.of(OrderState.received(order))
    response.status_code = status.HTTP_200_OK
    return OrderPublic.of(await _current_state(services, conn, order))


@router.get("/orders/{reference}", responses=NOT_FOUND)
async def get_order(
    reference: OrderRef, services: ServicesDep, conn: ConnectionDep
) -> OrderPublic:
    """An order with its lines, totals, payment and shipments."""
    order = await find_by_reference(conn, reference)
    if order is None:
        raise not_found("order", reference)
    return OrderPublic.of(await _current_state(services, conn, order))


@router.get("/orders")
async def list_orders(
    conn: ConnectionDep,
    status: OrderStatus | None = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[OrderSummary]:
    """Orders, newest first, filtered by status and channel."""
    query = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if status is not None:
        query = query.where(Order.status == status)
    if channel is not None:
        query = query.where(Order.channel == channel)
    if cursor is not None:
        created_at, order_id = _decode_cursor(cursor)
        query = query.where(tuple_(Order.created_at, Order.id) < (created_at, order_id))
    rows = (await conn.execute(query.limit(limit + 1))).all()
    items = [_summary(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = _encode_cursor(items[-1].created_at, items[-1].id) if more else None
    return Page(items=items, next_cursor=next_cursor)


@router.get("/orders/{reference}/timeline", responses=NOT_FOUND)
async def get_timeline(reference: OrderRef, conn: ConnectionDep) -> list[TimelineEntry]:
    """What happened to the order, who did it and when, oldest first."""
    order = await find_by_reference(conn, reference)
    if order is None:
        raise not_found("order", reference)
    rows = await conn.execute(
        select(OrderEvent)
        .where(OrderEvent.order_id == order.order_id)
        .order_by(OrderEvent.at, OrderEvent.seq)
    )
    return [
        TimelineEntry(
            at=row.at,
            type=row.type,
            actor=row.actor,
            message=row.message,
            data=row.data,
        )
        for row in rows
    ]


async def _ensure_started(services: Services, order: PlaceOrder) -> None:
    """Start the order's workflow unless it runs or ran already."""
    try:
        await services.temporal.start_workflow(
            OrderWorkflow.run,
            order,
            id=workflow_id_for(order.order_id),
            task_queue=services.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"order {order.number} from {order.channel}",
        )
    except WorkflowAlreadyStartedError:
        pass


async def _current_state(
    services: Services, conn: AsyncConnection, order: PlaceOrder
) -> OrderState:
    """Ask the workflow; if its history is gone, read the read model."""
    handle: WorkflowHandle[OrderWorkflow, OrderState] = (
        services.temporal.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(order.order_id)
        )
    )
    try:
        return await handle.query(OrderWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            logger.warning(
                "order %s: query failed (%s), answering from the read model",
                order.order_id,
                error,
            )
    return await _stored_state(conn, order)


async def _stored_state(conn: AsyncConnection, order: PlaceOrder) -> OrderState:
    order_id = order.order_id
    row = (await conn.execute(select(Order).where(Order.id == order_id))).first()
    if row is None:
        return OrderState.received(order)
    lines = await conn.execute(
        select(OrderLine).where(OrderLine.order_id == order_id).order_by(OrderLine.line)
    )
    shipments = (
        await conn.execute(
            select(Shipment)
            .where(Shipment.order_id == order_id)
            .order_by(Shipment.number)
        )
    ).all()
    shipment_lines = (
        await conn.execute(
            select(ShipmentLine)
            .where(ShipmentLine.shipment_id.in_([s.id for s in shipments]))
            .order_by(ShipmentLine.line)
        )
    ).all()
    return OrderState(
        order_id=row.id,
        number=row.number,
        channel=row.channel,
        external_id=row.external_id,
        status=row.status,
        payment_status=row.payment_status,
        payment_method=row.payment_method,
        failure_reason=row.failure_reason,
        customer=Customer(
            email=row.customer_email, name=row.customer_name, phone=row.customer_phone
        ),
        shipping_address=Address.model_validate(row.shipping_address),
        currency=row.currency,
        lines=[
            OrderLineModel(
                line=line.line,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                total_minor=line.total_minor,
            )
            for line in lines
        ],
        subtotal_minor=row.subtotal_minor,
        shipping_minor=row.shipping_minor,
        total_minor=row.total_minor,
        shipments=[
            ShipmentState(
                shipment_id=shipment.id,
                number=shipment.number,
                warehouse=shipment.warehouse,
                status=shipment.status,
                lines=[
                    ShipmentLineModel(
                        line=item.line, sku=item.sku, quantity=item.quantity
                    )
                    for item in shipment_lines
                    if item.shipment_id == shipment.id
                ],
                package_code=shipment.package_code,
                weight_grams=shipment.weight_grams,
                carrier=shipment.carrier,
                tracking_number=shipment.tracking_number,
                shipped_at=shipment.shipped_at,
                delivered_at=shipment.delivered_at,
            )
            for shipment in shipments
        ],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _summary(row: Row[Any]) -> OrderSummary:
    return OrderSummary(
        id=row.id,
        number=row.number,
        channel=row.channel,
        external_id=row.external_id,
        status=row.status,
        payment_status=row.payment_status,
        failure_reason=row.failure_reason,
        customer_email=row.customer_email,
        total=Money.of(row.total_minor, row.currency),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _encode_cursor(created_at: datetime, order_id: str) -> str:
    raw = f"{created_at.isoformat()}|{order_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, order_id = raw.split("|")
        return datetime.fromisoformat(created_at), order_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "pass back a next_cursor unchanged"
        ) from None
