"""Returns: open one for a delivered order, review it, receive the goods.

Opening is an update of the order's workflow (its validator enforces the
return window and the quantities); review and receipt are updates of the
return's own workflow. Lists and single returns are read from the read model.
"""

import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status
from sqlalchemy import Row, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from api.access import Caller, allow, may
from api.deps import ConnectionDep, Services, ServicesDep
from api.errors import Problem, ProblemDetails, not_found
from api.order_actions import ActionKey
from api.orders import OrderRef, visible_order
from api.paging import decode_cursor, encode_cursor
from api.pricing import quote_lines
from api.updates import run_update
from db.inventory import Warehouse
from db.returns import Return
from models.catalog import Page
from models.orders import OrderLineIn, workflow_id_for
from models.return_views import (
    ApproveRequest,
    ReceivedRequest,
    RejectRequest,
    ReturnPublic,
    ReturnRequest,
)
from models.returns import (
    InspectedLine,
    OpenReturn,
    ReceiveReturn,
    ReplacementLine,
    ReturnedQuantity,
    ReturnReason,
    ReturnState,
    ReturnStatus,
    ReviewReturn,
)
from models.rules import Action, Role
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["returns"])

ReturnReader = Annotated[
    Caller,
    Depends(
        allow(Role.INTEGRATOR, Role.SUPPORT, Role.WAREHOUSE, Role.ADMIN, Role.VIEWER)
    ),
]
Reviewer = Annotated[Caller, Depends(allow(Role.SUPPORT, Role.ADMIN))]
Receiver = Annotated[Caller, Depends(allow(Role.WAREHOUSE, Role.ADMIN))]
ReturnId = Annotated[
    str, Path(pattern=r"^[0-9a-fA-F-]{36}$", description="the return's id (UUID)")
]
# Refusals about what the request says rather than about the state.
UNPROCESSABLE = frozenset({"invalid-lines", "reason-required"})
ANSWERS: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown return"},
    409: {"model": ProblemDetails, "description": "Refused in the return's state"},
}


@router.post(
    "/orders/{reference}/returns",
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"model": ProblemDetails, "description": "Unknown order"},
        409: {"model": ProblemDetails, "description": "Refused in the order's state"},
    },
)
async def open_return(
    reference: OrderRef,
    body: ReturnRequest,
    response: Response,
    services: ServicesDep,
    caller: Annotated[Caller, Depends(may(Action.RETURN))],
    idempotency_key: ActionKey = None,
) -> ReturnPublic:
    """Open a return for delivered units (within the return window); an
    exchange names what the customer wants instead."""
    order = await visible_order(services, caller, reference)
    replacement = None
    if body.replacement is not None:
        async with services.engine.connect() as conn:
            quoted = await quote_lines(
                conn,
                [OrderLineIn(sku=r.sku, quantity=r.quantity) for r in body.replacement],
                order.currency,
                require_price=True,
                field="replacement",
            )
        replacement = [
            ReplacementLine(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.catalogue_minor or 0,
            )
            for line in quoted
        ]
    return_id = (
        str(uuid.uuid4())
        if idempotency_key is None
        else str(uuid.uuid5(uuid.UUID(order.order_id), f"return:{idempotency_key}"))
    )
    request = OpenReturn(
        return_id=return_id,
        lines=[
            ReturnedQuantity(line=line.line, quantity=line.quantity)
            for line in body.lines
        ],
        reason=ReturnReason(body.reason),
        note=body.note,
        replacement=replacement,
        actor=caller.actor,
    )
    handle = services.temporal.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order.order_id)
    )

    async def closed() -> tuple[str, str]:
        return "return-window-closed", f"order {order.number} takes no more returns"

    opened = await run_update(
        handle,
        "request_return",
        request,
        ReturnState,
        idempotency_key=idempotency_key,
        closed=closed,
        unprocessable=UNPROCESSABLE,
    )
    logger.info(
        "order %s: return %s opened by %s", order.order_id, opened.rma, caller.actor
    )
    response.headers["Location"] = f"/v1/returns/{opened.return_id}"
    return ReturnPublic.of(opened)


@router.get("/returns")
async def list_returns(
    conn: ConnectionDep,
    caller: ReturnReader,
    status: ReturnStatus | None = None,
    reason: ReturnReason | None = None,
    channel: Annotated[
        str | None, Query(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[ReturnPublic]:
    """Returns, oldest first, by status, reason and channel: the returns desk's
    work list, or what came back and why."""
    query = select(Return).order_by(Return.created_at, Return.id)
    if status is not None:
        query = query.where(Return.status == status)
    if reason is not None:
        query = query.where(Return.reason == reason)
    if channel is not None:
        query = query.where(Return.channel == channel)
    if caller.role == Role.INTEGRATOR:
        query = query.where(Return.channel == caller.channel)
    if cursor is not None:
        created_at, return_id = decode_cursor(cursor)
        query = query.where(
            tuple_(Return.created_at, Return.id) > (created_at, return_id)
        )
    rows = (await conn.execute(query.limit(limit + 1))).all()
    page = rows[:limit]
    next_cursor = (
        encode_cursor(page[-1].created_at, str(page[-1].id))
        if len(rows) > limit
        else None
    )
    return Page(
        items=[ReturnPublic.of(ReturnState.model_validate(row.state)) for row in page],
        next_cursor=next_cursor,
    )


@router.get("/returns/{return_id}", responses={404: ANSWERS[404]})
async def get_return(
    return_id: ReturnId, conn: ConnectionDep, caller: ReturnReader
) -> ReturnPublic:
    """One return: its lines, label, review, inspection and refund."""
    row = await _visible(conn, caller, return_id)
    return ReturnPublic.of(ReturnState.model_validate(row.state))


@router.post("/returns/{return_id}/approve", responses=ANSWERS)
async def approve_return(
    return_id: ReturnId,
    body: ApproveRequest,
    services: ServicesDep,
    caller: Reviewer,
) -> ReturnPublic:
    """Accept a return that waits for review: its label is issued."""
    review = ReviewReturn(actor=caller.actor, note=body.note)
    return await _update(services, caller, return_id, "approve", review)


@router.post("/returns/{return_id}/reject", responses=ANSWERS)
async def reject_return(
    return_id: ReturnId,
    body: RejectRequest,
    services: ServicesDep,
    caller: Reviewer,
) -> ReturnPublic:
    """Refuse a return that waits for review, saying why."""
    review = ReviewReturn(actor=caller.actor, note=body.reason)
    return await _update(services, caller, return_id, "reject", review)


@router.post("/returns/{return_id}/received", responses=ANSWERS)
async def receive_return(
    return_id: ReturnId,
    body: ReceivedRequest,
    services: ServicesDep,
    caller: Receiver,
) -> ReturnPublic:
    """The goods arrived and were inspected: restocked units go back on hand,
    accepted units are refunded."""
    if body.warehouse is not None:
        async with services.engine.connect() as conn:
            known = (
                await conn.execute(
                    select(Warehouse.code).where(Warehouse.code == body.warehouse)
                )
            ).first()
        if known is None:
            raise Problem(
                422,
                "unknown-warehouse",
                "Unknown warehouse",
                f"no warehouse has code {body.warehouse!r}",
            )
    receipt = ReceiveReturn(
        actor=caller.actor,
        warehouse=body.warehouse,
        lines=[InspectedLine.model_validate(item.model_dump()) for item in body.lines],
    )
    return await _update(services, caller, return_id, "receive", receipt)


async def _update(
    services: Services,
    caller: Caller,
    return_id: str,
    action: str,
    request: ReviewReturn | ReceiveReturn,
) -> ReturnPublic:
    async with services.engine.connect() as conn:
        row = await _visible(conn, caller, return_id)
    handle = services.temporal.get_workflow_handle(row.workflow_id)

    async def closed() -> tuple[str, str]:
        async with services.engine.connect() as conn:
            current = await _visible(conn, caller, return_id)
        return "return-closed", f"the return is {current.status}"

    state = await run_update(
        handle,
        action,
        request,
        ReturnState,
        idempotency_key=None,
        closed=closed,
        unprocessable=UNPROCESSABLE,
    )
    logger.info("return %s: %s by %s", state.rma, action, request.actor)
    return ReturnPublic.of(state)


async def _visible(conn: AsyncConnection, caller: Caller, return_id: str) -> Row[Any]:
    row = (await conn.execute(select(Return).where(Return.id == return_id))).first()
    if row is None or not caller.sees(row.channel):
        raise not_found("return", return_id)
    return row
