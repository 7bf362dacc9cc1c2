"""The API's Prometheus metrics at /metrics."""

import re
import uuid

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from api.deps import Services
from tests.conftest import http_client
from tests.workers.deployment import dashboard_targets
from workers.metrics import ORDERS_GAUGE

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(app: FastAPI) -> tuple[str, Samples]:
    async with http_client(app, None) as anonymous:
        answer = await anonymous.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    return answer.text, samples


def labels(**given: str) -> frozenset[tuple[str, str]]:
    return frozenset(given.items())


async def test_metrics_count_requests_by_route_template(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    missing = str(uuid.uuid4())
    _, before = await scrape(app)

    assert (await api.get(f"/v1/orders/{missing}")).status_code == 404
    assert (await api.get("/v1/orders", params={"limit": 1})).status_code == 200
    text, after = await scrape(app)

    not_found = labels(method="GET", route="/v1/orders/{reference}", status="404")
    listed = labels(method="GET", route="/v1/orders", status="200")
    for route in (not_found, listed):
        for name in (
            "oms_http_requests_total",
            "oms_http_request_duration_seconds_count",
        ):
            assert after[(name, route)] - before.get((name, route), 0) == 1, name
    fast = labels(le="10.0", **dict(not_found))
    assert after[("oms_http_request_duration_seconds_bucket", fast)] >= 1
    # The scrape that is being answered is the only request in flight.
    assert after[("oms_http_requests_in_flight", labels(method="GET"))] == 1
    assert missing not in text


async def test_unknown_paths_share_one_label(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    await api.get(f"/wp-admin/{uuid.uuid4()}.php")

    text, samples = await scrape(app)

    unmatched = labels(method="GET", route="unmatched", status="404")
    assert samples[("oms_http_requests_total", unmatched)] >= 1
    assert "wp-admin" not in text


async def test_metrics_can_be_turned_off(app: FastAPI) -> None:
    services: Services = app.state.services
    settings = services.settings.model_copy(update={"api_metrics": False})
    quiet = create_app(settings, services)

    async with http_client(quiet, None) as anonymous:
        answer = await anonymous.get("/metrics")

    assert answer.status_code == 404


async def test_the_dashboard_reads_metrics_the_api_and_worker_serve(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    await api.get("/v1/orders", params={"limit": 1})
    _, samples = await scrape(app)
    served = {name for name, _ in samples}

    read = {
        name
        for target in dashboard_targets("prometheus")
        for name in re.findall(r"\b(oms_[a-z_]+)\b", target["expr"])
    }

    assert read - served == {ORDERS_GAUGE}
