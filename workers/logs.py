"""Log lines as text or JSON; every line about an order names the order and
its workflow.

Temporal's loggers (`workflow.logger`, `activity.logger`) put the workflow id
on each record; the API binds the order a request is about with
`bind_order`. `OrderFields` turns either into `order_id` and `workflow_id`
fields, which the JSON format writes out.
"""

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace
from temporalio import activity, workflow

from models.orders import order_id_of, workflow_id_for

# The order (and the workflow) the current request is about.
_order: ContextVar[tuple[str, str] | None] = ContextVar("oms_order", default=None)

# Libraries that narrate their internals at INFO: keep their warnings.
QUIET_LOGGERS = ("alembic.runtime.plugins", "httpx")


def bind_order(order_id: str, workflow_id: str | None = None) -> None:
    """Name `order_id`, and its workflow (the order's unless told), on every
    line logged from here on in this request."""
    _order.set((order_id, workflow_id or workflow_id_for(order_id)))


def _workflow_id(record: logging.LogRecord) -> str | None:
    for attribute in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, attribute, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id
    return None


class OrderFields(logging.Filter):
    """Set `order_id` and `workflow_id` on records about an order (else None)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # A line may name its order itself: logger.info(..., extra={"order_id": ...})
        order_id = getattr(record, "order_id", None)
        workflow_id = getattr(record, "workflow_id", None) or _workflow_id(record)
        if workflow_id is not None:
            order_id = order_id or order_id_of(workflow_id)
        elif order_id is not None:
            workflow_id = workflow_id_for(order_id)
        elif bound := _order.get():
            order_id, workflow_id = bound
        record.order_id = order_id
        record.workflow_id = workflow_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the order, the Temporal step and the
    trace the line belongs to when there is one."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "process": self.role,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ("order_id", "workflow_id"):
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        steps = getattr(record, "temporal_activity", None) or {}
        if isinstance(steps, dict) and "activity_type" in steps:
            line["activity"] = steps["activity_type"]
            line["attempt"] = steps.get("attempt")
        flow = getattr(record, "temporal_workflow", None) or {}
        if isinstance(flow, dict) and "workflow_type" in flow:
            line["workflow_type"] = flow["workflow_type"]
            line["run_id"] = flow.get("run_id")
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_handler(
    role: str, log_format: str, stream: TextIO | None = None
) -> logging.Handler:
    """A handler writing to `stream` (stderr unless told) in `log_format`
    (`text` or `json`) for process `role`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(OrderFields())
    if log_format == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(
            logging.Formatter(
                f"%(asctime)s {role:<6} %(levelname)-7s %(name)s: %(message)s"
            )
        )
    return handler


def configure_logging(role: str, level: str, log_format: str = "text") -> None:
    """Log every process's lines to stderr, at `level`, in `log_format`."""
    logging.basicConfig(level=level.upper(), handlers=[log_handler(role, log_format)])
    if log_format == "json":
        # The JSON line carries the workflow and activity as fields; Temporal
        # would also append them to the message.
        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
