"""OpenTelemetry traces, from the HTTP request through the order's workflow
into each of its steps, sent to an OTLP collector when one is configured.

Without `OMS_OTLP_ENDPOINT` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`)
nothing is traced and nothing is added to the Temporal client. Other standard
variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_HEADERS`) are read by the OpenTelemetry SDK itself.
"""

import logging

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from workers.settings import Settings

logger = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: the base endpoint plus /v1/traces, as the
    OTLP specification builds it from OTEL_EXPORTER_OTLP_ENDPOINT."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


def tracer_provider(settings: Settings, service: str) -> TracerProvider | None:
    """A provider exporting `service`'s spans over OTLP/HTTP in batches, or
    None when no collector is configured."""
    if not settings.otlp_endpoint:
        return None
    url = traces_url(settings.otlp_endpoint)
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES,
    # which win over the default name given here.
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    logger.info("tracing to %s as %s", url, resource.attributes[SERVICE_NAME])
    return provider


def tracing_interceptors(provider: TracerProvider | None) -> list[Interceptor]:
    """The Temporal client's interceptors for `provider`: spans for starting,
    signalling and updating workflows, and (on workers using the client) for
    running workflows and activities."""
    if provider is None:
        return []
    return [TracingInterceptor(provider.get_tracer("oms"))]
