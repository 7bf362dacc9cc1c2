"""Orders: create, read, list and follow them on their timeline."""

import logging
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response, status
from sqlalchemy import select, tuple_
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.access import Caller, Creator, Reader
from api.deps import ConnectionDep, Services, ServicesDep
from api.errors import Problem, ProblemDetails, not_found
from api.intake import find_by_reference, mark_started, take_in
from api.paging import decode_cursor, encode_cursor
from api.read_model import order_summary, stored_state
from db.notifications import Notification
from db.orders import Order, OrderEvent
from models.catalog import Page
from models.notifications import NotificationPublic
from models.order_views import OrderPublic, OrderSummary, TimelineEntry
from models.orders import (
    OrderCreate,
    OrderState,
    OrderStatus,
    PlaceOrder,
    workflow_id_for,
)
from models.rules import Role
from workers.logs import bind_order
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["orders"])

OrderRef = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="order id (UUID) or number (SO-000123)",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=r"^[!-~]{1,255}$",
        description="any printable ASCII up to 255 characters, e.g. a UUID",
    ),
]
# A query needs a worker; without one, answer from the read model instead.
QUERY_TIMEOUT = timedelta(seconds=5)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown order"}
}


def _links(reference: str, *operations: str) -> dict[str, Any]:
    """OpenAPI links: where a client (or a stateful fuzzer) can go next."""
    return {
        operation: {"operationId": operation, "parameters": {"reference": reference}}
        for operation in operations
    }


FOLLOW_ORDER = _links(
    "$response.body#/id",
    "get_order",
    "get_timeline",
    "cancel_order",
    "amend_order",
    "hold_order",
    "release_order",
) | {
    "get_customer": {
        "operationId": "get_customer",
        "parameters": {"customer_id": "$response.body#/customer_id"},
    }
}


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "The order, taken in", "links": FOLLOW_ORDER},
        200: {
            "model": OrderPublic,
            "description": "The order this request created before",
            "links": FOLLOW_ORDER,
        },
        404: {"model": ProblemDetails, "description": "Unknown SKU"},
    },
)
async def create_order(
    body: OrderCreate,
    response: Response,
    services: ServicesDep,
    caller: Creator,
    idempotency_key: IdempotencyKey = None,
) -> OrderPublic:
    """Take an order in and start its workflow; a repeated request returns it."""
    if not caller.sees(body.channel):
        raise Problem(
            403,
            "channel-not-allowed",
            "Not allowed",
            f"key {caller.name} creates orders for channel {caller.channel} only",
        )
    async with services.engine.connect() as conn:
        intake = await take_in(
            conn,
            body,
            idempotency_key,
            pricing=services.delivery_pricing,
            created_by=caller.actor,
            defaults=services.settings.order_defaults,
        )
    order = intake.order
    bind_order(order.order_id)
    if not intake.workflow_started:
        await _start(services, order)
    response.headers["Location"] = f"/v1/orders/{order.order_id}"
    if intake.created:
        logger.info(
            "order %s (%s) created from %s", order.order_id, order.number, order.channel
        )
        return OrderPublic.of(OrderState.received(order))
    response.status_code = status.HTTP_200_OK
    return OrderPublic.of(await current_state(services, order))


@router.get("/orders/{reference}", responses=NOT_FOUND)
async def get_order(
    reference: OrderRef, services: ServicesDep, caller: Reader
) -> OrderPublic:
    """An order with its lines, totals, payment and shipments."""
    order = await visible_order(services, caller, reference)
    return OrderPublic.of(await current_state(services, order))


@router.get(
    "/orders",
    responses={
        200: {
            "description": "A page of orders",
            "links": _links("$response.body#/items/0/id", "get_order", "get_timeline"),
        }
    },
)
async def list_orders(
    conn: ConnectionDep,
    caller: Reader,
    status: OrderStatus | None = None,
    channel: Annotated[
        str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    ] = None,
    customer_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[OrderSummary]:
    """Orders, newest first, filtered by status, channel and customer."""
    query = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
    if status is not None:
        query = query.where(Order.status == status)
    if channel is not None:
        query = query.where(Order.channel == channel)
    if customer_id is not None:
        query = query.where(Order.customer_id == str(customer_id))
    if caller.role == Role.INTEGRATOR:
        query = query.where(Order.channel == caller.channel)
    if cursor is not None:
        created_at, order_id = decode_cursor(cursor)
        query = query.where(tuple_(Order.created_at, Order.id) < (created_at, order_id))
    rows = (await conn.execute(query.limit(limit + 1))).all()
    items = [order_summary(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
    return Page(items=items, next_cursor=next_cursor)


@router.get("/orders/{reference}/timeline", responses=NOT_FOUND)
async def get_timeline(
    reference: OrderRef, services: ServicesDep, caller: Reader, conn: ConnectionDep
) -> list[TimelineEntry]:
    """What happened to the order, who did it and when, oldest first."""
    order = await visible_order(services, caller, reference)
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


@router.get("/orders/{reference}/notifications", responses=NOT_FOUND)
async def list_notifications(
    reference: OrderRef, services: ServicesDep, caller: Reader, conn: ConnectionDep
) -> list[NotificationPublic]:
    """The messages sent to the order's customer (or refused by the
    notifier), oldest first: each event reaches the customer at most once
    per medium."""
    order = await visible_order(services, caller, reference)
    rows = await conn.execute(
        select(Notification)
        .where(Notification.order_id == order.order_id)
        .order_by(Notification.created_at, Notification.id)
    )
    return [
        NotificationPublic.model_validate(row, from_attributes=True) for row in rows
    ]


async def visible_order(
    services: Services, caller: Caller, reference: str
) -> PlaceOrder:
    """The order, if the caller may see it; 404 alike if absent or not theirs."""
    async with services.engine.connect() as conn:
        order = await find_by_reference(conn, reference)
    if order is None or not caller.sees(order.channel):
        raise not_found("order", reference)
    bind_order(order.order_id)
    return order


async def _start(services: Services, order: PlaceOrder) -> None:
    """Start the order's workflow, unless it runs already, and note it started."""
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
    async with services.engine.begin() as conn:
        await mark_started(conn, order.order_id)


async def current_state(services: Services, order: PlaceOrder) -> OrderState:
    """Ask the workflow; if its history is gone, read the read model."""
    handle: WorkflowHandle[OrderWorkflow, OrderState] = (
        services.temporal.get_workflow_handle_for(
            OrderWorkflow.run, workflow_id_for(order.order_id)
        )
    )
    try:
        return await handle.query(
            OrderWorkflow.current_state, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            logger.warning(
                "order %s: query failed (%s), answering from the read model",
                order.order_id,
                error,
            )
    async with services.engine.connect() as conn:
        return await stored_state(conn, order)
