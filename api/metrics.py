"""Prometheus metrics of the API: requests by route template, method and
status, their latency, and requests in flight.

`/metrics` needs no API key, like the health probes: scrape it on the
internal network and keep it off the public ingress, or turn it off with
OMS_API_METRICS=false. Routes are labelled by their template
(`/v1/orders/{reference}`), never by the raw path, so an order id never
becomes a label.
"""

import os
import time
from collections.abc import Sequence

import fastapi.routing
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

router = APIRouter(tags=["health"])

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Paths no route matched (404s, probes of scanners) share one label.
UNMATCHED = "unmatched"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class HttpMetrics:
    """The API's metrics, in a registry of the app's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "oms_http_requests",
            "HTTP requests answered, by method, route template and status",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "oms_http_request_duration_seconds",
            "time to answer an HTTP request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "oms_http_requests_in_flight",
            "HTTP requests being answered now",
            ["method"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format.

        Under a process manager that runs several API processes on one port
        (uvicorn or gunicorn with workers), prometheus_client's multiprocess
        mode adds up every process's figures; its variable
        PROMETHEUS_MULTIPROC_DIR turns it on.
        """
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware that counts and times every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[int, str] | None = None

    def _template(self, scope: Scope) -> str:
        """The template of the route that answered, prefix included."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._templates is None:
            self._templates = _templates(scope["app"].routes)
        template = self._templates.get(id(route)) or getattr(route, "path", None)
        return str(template or UNMATCHED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 500  # unless the app answers

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        in_flight = self.metrics.in_flight.labels(method)
        in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            in_flight.dec()
            labels = (method, self._template(scope), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def _templates(routes: Sequence[BaseRoute]) -> dict[int, str]:
    """Each route's full template by the route's identity.

    Routing puts the matched route on the scope, but FastAPI 0.137 and later
    keep an included router's routes without its prefix (`/orders`, not
    `/v1/orders`): the full path comes from the app's route contexts. Older
    versions copy routes with the prefix, which their `path` already has.
    """
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:
        return {}
    return {
        id(context.original_route): context.path
        for context in iter_route_contexts(routes)
        if context.path
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The API's metrics for Prometheus."""
    http_metrics: HttpMetrics = request.app.state.http_metrics
    return Response(http_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
