"""How the workflows call activities: by name, with shared timeouts and retries."""

from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.errors import FailureType

R = TypeVar("R")

# I/O steps: a hung call is abandoned after this long and retried.
STEP_TIMEOUT = timedelta(seconds=30)

# Retried until they succeed, with a growing pause; business failures are final.
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    non_retryable_error_types=[failure.value for failure in FailureType],
)


async def run_step(
    activity: str, arg: BaseModel, result_type: type[R], *, summary: str
) -> R:
    """Run one activity to completion; business failures come out as ActivityError."""
    result: Any = await workflow.execute_activity(
        activity,
        arg,
        result_type=result_type,
        start_to_close_timeout=STEP_TIMEOUT,
        retry_policy=RETRY,
        summary=summary,
    )
    return result  # type: ignore[no-any-return]
