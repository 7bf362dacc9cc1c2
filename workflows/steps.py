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
    from models.notifications import NOTIFY_EVENTS, NotifyCustomer

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
    # A message to a customer: worth a few tries, never worth holding an
    # order for (a failure is logged and the order goes on).
    "notify_customer": (
        timedelta(seconds=60),
        RetryPolicy(
            initial_interval=timedelta(seconds=5),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(minutes=5),
            maximum_attempts=8,
        ),
    ),
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
# Orders started before customers were notified stay silent until a worker
# with notifications runs them on from where their history ends.
NOTIFY_PATCH = "customer-notifications"
# The longest an order waits to tell its customer of a step.
NOTIFY_AT_MOST = timedelta(minutes=15)
# Steps that record an event of their own, besides the read-model writes.
_STEP_EVENTS = {
    "refund_payment": "payment.refunded",
    "create_payment_link": "payment.link_sent",
    "ship_shipment": "shipment.shipped",
}


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
    result = await _run(activity, arg, options)
    notice = _customer_notice(activity, arg)
    if notice is not None and workflow.patched(NOTIFY_PATCH):
        await _notify(notice)
    return result  # type: ignore[no-any-return]


async def _run(activity: str, arg: BaseModel, options: dict[str, Any]) -> Any:
    result: Any
    if not (activity in LOCAL and workflow.patched(LOCAL_PATCH)):
        return await workflow.execute_activity(activity, arg, **options)
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
    return result


def _customer_notice(activity: str, arg: BaseModel) -> NotifyCustomer | None:
    """The message a customer gets once this step is done, if any."""
    event_type = _STEP_EVENTS.get(activity) or getattr(arg, "type", None)
    if activity not in LOCAL and activity not in _STEP_EVENTS:
        return None
    if event_type not in NOTIFY_EVENTS:
        return None
    state = getattr(arg, "state", None)
    order_id = getattr(arg, "order_id", None) or getattr(state, "order_id", None)
    event_id = getattr(arg, "event_id", None)
    if not (isinstance(order_id, str) and isinstance(event_id, str)):
        return None
    return NotifyCustomer(order_id=order_id, event_id=event_id, event_type=event_type)


async def _notify(notice: NotifyCustomer) -> None:
    timeout, retry = POLICIES["notify_customer"]
    try:
        await workflow.execute_activity(
            "notify_customer",
            notice,
            result_type=list[str],
            start_to_close_timeout=timeout,
            # Nobody polling the notifications queue holds an order up this
            # long at most; then it goes on with the customer untold.
            schedule_to_close_timeout=NOTIFY_AT_MOST,
            retry_policy=retry,
            summary=f"notify {notice.event_type}",
        )
    except ActivityError as error:
        workflow.logger.warning(
            "order %s: the customer was not told of %s: %s",
            notice.order_id,
            notice.event_type,
            error.cause or error,
        )
