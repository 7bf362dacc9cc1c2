"""Worker interceptors: cross-cutting rules for every activity."""

from typing import Any

from sqlalchemy import exc as sa_exc
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from models.errors import FailureType


class _RefusedDataIsFinal(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except (sa_exc.DataError, sa_exc.IntegrityError) as error:
            # The database refused a value or a constraint: the same call
            # would be refused forever, so retrying only stalls the order.
            # Failing the step lets the workflow compensate and say why.
            activity.logger.error("database refused the step: %s", error.orig)
            raise ApplicationError(
                f"the database refused the step: {type(error.orig).__name__}",
                type=FailureType.DATA_REFUSED,
                non_retryable=True,
            ) from error


class RefusedDataIsFinal(Interceptor):
    """Turn database refusals (bad value, violated constraint) into final errors."""

    def intercept_activity(
        self, next: ActivityInboundInterceptor
    ) -> ActivityInboundInterceptor:
        return _RefusedDataIsFinal(next)
