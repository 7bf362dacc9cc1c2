"""The FastAPI application and its start-up."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from api import (
    carrier_webhooks,
    catalog,
    customers,
    delivery,
    exports,
    health,
    inventory,
    metrics,
    order_actions,
    orders,
    reports,
    returns,
    shipments,
    subscriptions,
    webhooks,
)
from api.access import RateLimiter
from api.deps import Services
from api.errors import ProblemDetails, document_problems, install_error_handlers
from api.limits import BodyLimit, strict_query
from api.metrics import HttpMetrics, RequestMetrics
from db.engine import create_engine
from workers.settings import Settings, get_settings
from workers.temporal import connect
from workers.tracing import tracer_provider, tracing_interceptors

logger = logging.getLogger(__name__)

DESCRIPTION = """
Order management: every order is a Temporal workflow from received to
completed; stock, payments and the read model live in PostgreSQL.

Errors are `application/problem+json` with a stable `type` per rule. Money is
a decimal string with an ISO 4217 currency.
"""


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        app.openapi_schema = document_problems(
            get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
        )
    return app.openapi_schema


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    tracing: TracerProvider | None = None,
) -> FastAPI:
    """Build the app; with `services` it uses them instead of connecting itself.

    Requests are traced with `tracing`, else with the collector the settings
    name, if any. Given `services` bring their own Temporal client, which
    carries the tracing interceptor or not.
    """
    settings = settings or get_settings()
    if tracing is None and services is None:
        tracing = tracer_provider(settings, "oms-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            yield
            return
        engine = create_engine(settings.database_url)
        temporal = await connect(
            settings, wait_seconds=30, interceptors=tracing_interceptors(tracing)
        )
        app.state.services = Services(engine, temporal, settings)
        logger.info(
            "API connected to Temporal at %s (namespace %s)",
            settings.temporal_address,
            settings.temporal_namespace,
        )
        try:
            yield
        finally:
            await engine.dispose()
            if tracing is not None:
                tracing.shutdown()

    app = FastAPI(
        title="OMS",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(strict_query)],
        generate_unique_id_function=lambda route: route.name,
        responses={
            422: {"model": ProblemDetails, "description": "Invalid request"},
            500: {"model": ProblemDetails, "description": "Internal error"},
            503: {"model": ProblemDetails, "description": "A backend is unavailable"},
        },
    )
    if services is not None:
        app.state.services = services
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_per_second, settings.rate_limit_burst
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.api_metrics:
        app.state.http_metrics = HttpMetrics()
        app.add_middleware(RequestMetrics, metrics=app.state.http_metrics)
        app.include_router(metrics.router)
    if tracing is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracing, excluded_urls="/healthz$,/readyz$,/metrics$"
        )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.include_router(health.router)
    app.include_router(orders.router, prefix="/v1")
    app.include_router(order_actions.router, prefix="/v1")
    app.include_router(webhooks.router, prefix="/v1")
    app.include_router(carrier_webhooks.router, prefix="/v1")
    app.include_router(catalog.router, prefix="/v1")
    app.include_router(inventory.router, prefix="/v1")
    app.include_router(shipments.router, prefix="/v1")
    app.include_router(delivery.router, prefix="/v1")
    app.include_router(returns.router, prefix="/v1")
    app.include_router(subscriptions.router, prefix="/v1")
    app.include_router(customers.router, prefix="/v1")
    app.include_router(exports.router, prefix="/v1")
    app.include_router(reports.router, prefix="/v1")
    return app
