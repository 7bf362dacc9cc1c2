"""What support staff and integrators do to a running order.

Each route sends a workflow update and answers with the order as it is after
the update ran. A refusal answers 409 problem+json whose type names the rule
of models.rules that refused it; the same Idempotency-Key returns the first
answer again instead of acting twice.
"""

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header

from api.access import Caller, may
from api.deps import Services, ServicesDep
from api.errors import FieldError, Problem, ProblemDetails
from api.orders import OrderRef, current_state, visible_order
from api.pricing import quote_lines
from api.updates import run_update
from models.order_actions import (
    AmendLine,
    AmendOrder,
    AmendRequest,
    CancelOrder,
    CancelRequest,
    HoldOrder,
    HoldRequest,
    ReleaseOrder,
)
from models.order_views import OrderPublic
from models.orders import (
    Address,
    CancelReason,
    OrderState,
    PlaceOrder,
    workflow_id_for,
)
from models.rules import Action
from workflows.orders import OrderWorkflow

logger = logging.getLogger(__name__)

router = APIRouter(tags=["order actions"])

# Refusals about what the request says rather than about the order's state.
UNPROCESSABLE = frozenset({"invalid-lines", "no-price"})

ActionKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=r"^[!-~]{1,255}$",
        description="repeat a request with the same key to get its first answer",
    ),
]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemDetails, "description": "Unknown order"},
    409: {"model": ProblemDetails, "description": "Refused in the order's state"},
}


@router.post("/orders/{reference}/cancel", responses=RESPONSES)
async def cancel_order(
    reference: OrderRef,
    body: CancelRequest,
    services: ServicesDep,
    caller: Annotated[Caller, Depends(may(Action.CANCEL))],
    idempotency_key: ActionKey = None,
) -> OrderPublic:
    """Cancel the order (or some units of some lines); stock and money go back."""
    order = await visible_order(services, caller, reference)
    request = CancelOrder(
        reason=CancelReason(body.reason),
        note=body.note,
        lines=body.lines,
        actor=caller.actor,
    )
    return await _update(services, order, "cancel", request, idempotency_key)


@router.post("/orders/{reference}/amend", responses=RESPONSES)
async def amend_order(
    reference: OrderRef,
    body: AmendRequest,
    services: ServicesDep,
    caller: Annotated[Caller, Depends(may(Action.AMEND))],
    idempotency_key: ActionKey = None,
) -> OrderPublic:
    """Change the shipping address or the lines, until picking starts."""
    order = await visible_order(services, caller, reference)
    lines = None
    if body.lines is not None:
        _refuse_repeated_skus([line.sku for line in body.lines])
        async with services.engine.connect() as conn:
            quoted = await quote_lines(
                conn, body.lines, order.currency, require_price=False
            )
        lines = [
            AmendLine(
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                unit_price_minor=line.explicit_minor,
                catalogue_price_minor=line.catalogue_minor,
            )
            for line in quoted
        ]
    address = (
        None
        if body.shipping_address is None
        else Address.model_validate(body.shipping_address.model_dump())
    )
    request = AmendOrder(shipping_address=address, lines=lines, actor=caller.actor)
    return await _update(services, order, "amend", request, idempotency_key)


@router.post("/orders/{reference}/hold", responses=RESPONSES)
async def hold_order(
    reference: OrderRef,
    body: HoldRequest,
    services: ServicesDep,
    caller: Annotated[Caller, Depends(may(Action.HOLD))],
    idempotency_key: ActionKey = None,
) -> OrderPublic:
    """Hold the order before its next step, for example for a fraud review."""
    order = await visible_order(services, caller, reference)
    request = HoldOrder(reason=body.reason, actor=caller.actor)
    return await _update(services, order, "hold", request, idempotency_key)


@router.post("/orders/{reference}/release", responses=RESPONSES)
async def release_order(
    reference: OrderRef,
    services: ServicesDep,
    caller: Annotated[Caller, Depends(may(Action.RELEASE))],
    idempotency_key: ActionKey = None,
) -> OrderPublic:
    """Let a held order go on where it stopped."""
    order = await visible_order(services, caller, reference)
    request = ReleaseOrder(actor=caller.actor)
    return await _update(services, order, "release", request, idempotency_key)


def _refuse_repeated_skus(skus: list[str]) -> None:
    seen: set[str] = set()
    errors = []
    for i, sku in enumerate(skus):
        if sku in seen:
            errors.append(
                FieldError(field=f"lines[{i}].sku", message=f"{sku} is listed twice")
            )
        seen.add(sku)
    if errors:
        raise Problem(
            422,
            "validation-error",
            "The request is not valid",
            "each SKU appears once; set its total quantity",
            errors=errors,
        )


async def _update(
    services: Services,
    order: PlaceOrder,
    action: str,
    request: CancelOrder | AmendOrder | HoldOrder | ReleaseOrder,
    idempotency_key: str | None,
) -> OrderPublic:
    """Run one of OrderWorkflow's updates (named as the action) and map refusals."""
    handle = services.temporal.get_workflow_handle_for(
        OrderWorkflow.run, workflow_id_for(order.order_id)
    )

    async def closed() -> tuple[str, str]:
        state = await current_state(services, order)
        return "order-closed", f"the order is {state.status}"

    state = await run_update(
        handle,
        action,
        request,
        OrderState,
        idempotency_key=idempotency_key,
        closed=closed,
        unprocessable=UNPROCESSABLE,
    )
    logger.info("order %s: %s by %s", order.order_id, action, request.actor)
    return OrderPublic.of(state)
