"""Worker interceptors: cross-cutting rules for every activity."""

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exc as sa_exc
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
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


class ActivityRouting(Interceptor):
    """Send each activity a workflow starts to its domain's task queue.

    The route is a worker setting, not part of the workflow's code: Temporal
    does not compare an activity's queue when it replays a history, so
    running orders follow a renamed queue from their next step on.
    """

    def __init__(self, routes: Mapping[str, str]) -> None:
        self.routes = dict(routes)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        routes = self.routes

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> Any:
                if input.task_queue is None:
                    input.task_queue = routes.get(input.activity)
                return super().start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound
