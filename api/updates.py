"""Running a workflow update for a request, and turning its refusals into problems."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import Problem

R = TypeVar("R")

UPDATE_TIMEOUT = timedelta(seconds=60)


async def run_update(
    handle: WorkflowHandle[Any, Any],
    action: str,
    request: BaseModel,
    result_type: type[R],
    *,
    idempotency_key: str | None,
    closed: Callable[[], Awaitable[tuple[str, str]]],
    unprocessable: frozenset[str] = frozenset(),
) -> R:
    """Run update `action`; a validator's or handler's refusal becomes 409
    (422 for rules in `unprocessable`); an ended workflow answers 409 with the
    rule and detail `closed()` gives."""
    update_id = None if idempotency_key is None else f"{action}:{idempotency_key}"
    try:
        result: R = await handle.execute_update(
            action,
            request,
            id=update_id,
            result_type=result_type,
            rpc_timeout=UPDATE_TIMEOUT,
        )
        return result
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        # The update keeps going in the workflow; the same key fetches its answer.
        raise Problem(
            503,
            "update-pending",
            f"{action.capitalize()} still in progress",
            "repeat the request with the same Idempotency-Key for its answer",
            headers={"Retry-After": "5"},
        ) from None
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError) and cause.type:
            status = 422 if cause.type in unprocessable else 409
            raise Problem(
                status, cause.type, f"{action.capitalize()} refused", cause.message
            ) from None
        raise
    except RPCError as error:
        if error.status not in (
            RPCStatusCode.NOT_FOUND,
            RPCStatusCode.FAILED_PRECONDITION,
        ):
            raise
        rule, detail = await closed()
        raise Problem(409, rule, f"{action.capitalize()} refused", detail) from None
