"""What operators see of an order: the orders-by-status gauge on the worker's
metrics endpoint, one trace from the HTTP request into every step, and JSON
log lines that name the order and its workflow."""

import io
import json
import logging
import socket
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity, workflow
from temporalio.client import Client

from api.app import create_app
from api.deps import Services
from models.orders import order_id_of, workflow_id_for
from tests.conftest import FIRST, MakeProduct, http_client, own_queues
from tests.gates import GatedCarrier, GatedGateway
from tests.helpers import finished, order_body
from workers.logs import log_handler
from workers.metrics import ORDERS_GAUGE, OrdersByStatus
from workers.settings import Settings
from workers.temporal import metrics_runtime
from workers.tracing import tracer_provider, traces_url, tracing_interceptors
from workers.worker import build_workers
from workflows.orders import OrderWorkflow


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def place(api: httpx.AsyncClient, body: dict[str, Any]) -> str:
    created = await api.post("/v1/orders", json=body)
    assert created.status_code == 201, created.text
    order_id: str = created.json()["id"]
    return order_id


async def wait_done(client: Client, order_id: str) -> None:
    await finished(
        client.get_workflow_handle_for(OrderWorkflow.run, workflow_id_for(order_id))
    )


async def test_worker_metrics_count_orders_by_status_and_channel(
    api: httpx.AsyncClient,
    client: Client,
    engine: AsyncEngine,
    make_product: MakeProduct,
) -> None:
    # A channel of its own: no other test's orders are counted under it.
    channel = f"obs-{uuid.uuid4().hex[:8]}"
    sku = await make_product({FIRST: 5})
    placed = [
        await place(api, order_body(sku, channel=channel, token=token))
        for token in ("tok_visa", "tok_visa", "tok_decline")
    ]
    for order_id in placed:
        await wait_done(client, order_id)
    address = free_address()
    runtime = metrics_runtime(address)

    counts = await OrdersByStatus(engine, runtime.metric_meter).report()
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        exposed = answer.read().decode()

    assert counts[("completed", channel)] == 2
    ours = {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(exposed)
        if family.name == ORDERS_GAUGE
        for sample in family.samples
        if sample.labels["channel"] == channel
    }
    assert ours == {"completed": 2, "failed": 1}


async def test_a_status_that_empties_reads_zero(engine: AsyncEngine) -> None:
    runtime = metrics_runtime(free_address())
    orders = OrdersByStatus(engine, runtime.metric_meter)
    gone = ("on_hold", f"obs-{uuid.uuid4().hex[:8]}")
    orders._reported.add(gone)

    counts = await orders.report()

    assert counts[gone] == 0


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
async def traced_api(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    client: Client,
    engine: AsyncEngine,
    settings: Settings,
    gateway: GatedGateway,
    carriers: list[GatedCarrier],
    keys: dict[str, str],
) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """The API and a worker of their own, both tracing into `spans`, as the
    API and worker processes do when a collector is configured."""
    provider, _ = spans
    config = client.config()
    config["interceptors"] = tracing_interceptors(provider)
    traced = Client(**config)
    own = settings.model_copy(update=own_queues(f"oms-trace-{uuid.uuid4().hex[:8]}"))
    app = create_app(own, Services(engine, traced, own, tuple(carriers)), provider)
    workers = build_workers(
        traced, engine, own, gateway=gateway, carriers=list(carriers)
    )
    async with workers, http_client(app, keys["admin"]) as http:
        yield http, traced


async def test_one_trace_spans_the_request_the_workflow_and_its_steps(
    traced_api: tuple[httpx.AsyncClient, Client],
    spans: tuple[TracerProvider, InMemorySpanExporter],
    make_product: MakeProduct,
) -> None:
    http, traced = traced_api
    provider, exporter = spans
    sku = await make_product({FIRST: 5})

    order_id = await place(http, order_body(sku))
    await wait_done(traced, order_id)
    provider.force_flush()

    finished_spans = exporter.get_finished_spans()
    [request] = [
        span
        for span in finished_spans
        if span.kind == SpanKind.SERVER and span.name == "POST /v1/orders"
    ]
    trace_id = request.context.trace_id
    names = {span.name for span in finished_spans if _in_trace(span, trace_id)}
    assert {
        "StartWorkflow:OrderWorkflow",
        "RunWorkflow:OrderWorkflow",
        "RunActivity:reserve_stock",
        "RunActivity:authorize_payment",
        # A local activity, run in the workflow's own task.
        "RunActivity:record_order",
        "StartChildWorkflow:ShipmentWorkflow",
        "RunWorkflow:ShipmentWorkflow",
    } <= names
    run = next(s for s in finished_spans if s.name == "RunWorkflow:OrderWorkflow")
    assert run.attributes is not None
    assert run.attributes["temporalWorkflowID"] == workflow_id_for(order_id)


def _in_trace(span: ReadableSpan, trace_id: int) -> bool:
    return span.context is not None and span.context.trace_id == trace_id


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Log lines at INFO as `oms worker` writes them with OMS_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = log_handler("worker", "json", stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    yield stream
    workflow.logger.workflow_info_on_message = True
    activity.logger.activity_info_on_message = True
    root.removeHandler(handler)
    root.setLevel(level)


async def test_json_log_lines_name_the_order_and_its_workflow(
    json_lines: io.StringIO,
    api: httpx.AsyncClient,
    client: Client,
    make_product: MakeProduct,
) -> None:
    sku = await make_product({FIRST: 5})

    order_id = await place(api, order_body(sku))
    await wait_done(client, order_id)

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    ours = [line for line in lines if line.get("order_id") == order_id]
    from_workflow = [line for line in ours if line.get("workflow_type")]
    from_activity = [line for line in ours if line.get("activity")]
    from_api = [line for line in ours if line["logger"] == "api.orders"]
    assert from_workflow and from_activity and from_api
    for line in ours:
        assert order_id_of(line["workflow_id"]) == order_id
        assert line["process"] == "worker" and line["level"] and line["time"]
    assert any(
        line["workflow_id"] == workflow_id_for(order_id)
        and line["workflow_type"] == "OrderWorkflow"
        and line["message"].endswith("is completed")
        for line in from_workflow
    )
    # The order's lines carry the fields; Temporal's details are not repeated
    # in the message.
    assert all("'workflow_id'" not in line["message"] for line in ours)


def test_tracing_is_off_unless_a_collector_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMS_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracer_provider(Settings(_env_file=None), "oms-test") is None
    assert tracing_interceptors(None) == []

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    standard = Settings(_env_file=None)
    monkeypatch.setenv("OMS_OTLP_ENDPOINT", "http://tempo:4318/")
    ours = Settings(_env_file=None)

    assert traces_url(standard.otlp_endpoint) == "http://collector:4318/v1/traces"
    assert traces_url(ours.otlp_endpoint) == "http://tempo:4318/v1/traces"
    provider = tracer_provider(ours, "oms-test")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "oms-test"
    provider.shutdown()
