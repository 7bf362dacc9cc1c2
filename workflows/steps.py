"""How the workflows call activities: by name, each with its own retry policy."""

from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
)
from temporalio.exceptions import TimeoutError as StepTimedOut

with workflow.unsafe.imports_passed_through():
    from models.errors import FailureType

R = TypeVar("R")

# Business failures are final whatever the policy; everything else is retried
# until it succeeds, with a growing pause, so a compensation always completes.
_FINAL = [failure.value for failure in FailureType]


def _policy(first: float, longest: float) -> RetryPolicy:
    return RetryPolicy(
        initial_interval=timedelta(seconds=first),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=longest),
        non_retryable_error_types=_FINAL,
    )


# Our own database: quick to come back, so retry soon.
DATABASE = (timedelta(seconds=30), _policy(0.5, 30))
# The payment gateway: a provider's outage lasts minutes.
GATEWAY = (timedelta(seconds=30), _policy(1, 60))
# Carriers: slow APIs, rate limits, outages of hours.
CARRIER = (timedelta(seconds=60), _policy(5, 600))

POLICIES: dict[str, tuple[timedelta, RetryPolicy]] = {
    "record_order": DATABASE,
    "record_order_event": DATABASE,
    "record_order_change": DATABASE,
    "reserve_stock": DATABASE,
    "held_stock": DATABASE,
    "reserve_more": DATABASE,
    "write_off_short": DATABASE,
    "replace_reservation": DATABASE,
    "release_stock": DATABASE,
    "release_lines": DATABASE,
    "authorize_payment": GATEWAY,
    "capture_payment": GATEWAY,
    "void_payment": GATEWAY,
    "refund_payment": GATEWAY,
    "create_payment_link": GATEWAY,
    "record_link_payment": DATABASE,
    "expire_payment_link": GATEWAY,
    "start_picking": DATABASE,
    "record_shipment_event": DATABASE,
    "pack_shipment": DATABASE,
    "book_shipment": CARRIER,
    "cancel_booking": CARRIER,
    "ship_shipment": CARRIER,
    "track_shipment": CARRIER,
    "record_return": DATABASE,
    "place_exchange": DATABASE,
    "issue_return_label": CARRIER,
    "cancel_return_label": CARRIER,
    "restock_return": DATABASE,
}


# Writes of the order's read model and timeline: short, to our own database,
# and never a reason to scale apart. They run as local activities, inside the
# workflow's own task on the worker that runs it, which spares the Temporal
# server a task dispatch and a workflow task per step.
LOCAL = frozenset(
    {
        "record_order",
        "record_order_event",
        "record_order_change",
        "record_shipment_event",
        "record_return",
    }
)
WAIT_FOR_IT = workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
# Orders started before the read-model writes became local keep them remote.
LOCAL_PATCH = "local-read-model-steps"


async def run_step(
    activity: str, arg: BaseModel, result_type: type[R], *, summary: str
) -> R:
    """Run one activity to completion; business failures come out as ActivityError.

    A cancelled workflow waits for a step in flight to finish, so what undoes
    it afterwards sees everything the step did.
    """
    timeout, retry = POLICIES[activity]
    options: dict[str, Any] = {
        "result_type": result_type,
        "start_to_close_timeout": timeout,
        "retry_policy": retry,
        "cancellation_type": WAIT_FOR_IT,
        "summary": summary,
    }
    result: Any
    if not (activity in LOCAL and workflow.patched(LOCAL_PATCH)):
        result = await workflow.execute_activity(activity, arg, **options)
        return result  # type: ignore[no-any-return]
    try:
        result = await workflow.execute_local_activity(activity, arg, **options)
    except (ApplicationError, StepTimedOut) as error:
        # A local activity's failure arrives unwrapped; wrap it as a remote
        # one's, so that every step fails the same way.
        raise ActivityError(
            f"{activity} failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=activity,
            activity_id="",
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        ) from error
    return result  # type: ignore[no-any-return]
