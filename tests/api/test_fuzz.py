"""Schemathesis against the API's own OpenAPI: no 500s, no answer off its schema.

The API and a worker run as their own processes (`oms api`, `oms worker`, as
in production) on this session's PostgreSQL and Temporal, on a task queue of
their own. Every operation is called with generated input, both valid and
invalid, with an admin key; every answer must be a documented status with a
documented body, and invalid input must be refused with a 4xx. A stateful run
then follows the schema's links: create an order, read it, act on it.
"""

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Err
from schemathesis.specs.openapi import checks
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from tests.conftest import FIRST
from tests.helpers import add_product, free_port
from workers.embedded import stop_process
from workers.settings import Settings

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
SETTINGS = settings(
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)


def _operations() -> dict[str, APIOperation[Any, Any, Any, Any]]:
    found = {}
    for result in SCHEMA.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found[result.ok().label] = result.ok()
    return found


OPERATIONS = _operations()


def _wait_ready(url: str, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
            raise RuntimeError("the API or the worker did not start")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def api_url(settings: Settings, client: Client) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "OMS_DATABASE_URL": settings.database_url,
        "OMS_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        # A queue of their own: the session's worker never sees these orders.
        "OMS_TEMPORAL_TASK_QUEUE": f"oms-fuzz-{uuid.uuid4().hex[:8]}",
        "OMS_CODEC_KEYS": json.dumps(settings.codec_secrets),
        "OMS_CODEC_KEY_ID": settings.codec_key_id,
        "OMS_API_PORT": str(port),
        "OMS_LOG_LEVEL": "WARNING",
        "OMS_SANDBOX_PICK_SECONDS": "0.05",
        "OMS_SANDBOX_PACK_SECONDS": "0.05",
        "OMS_SANDBOX_TRANSIT_SECONDS": "0.1",
        # Generated requests come fast; the rate limit is tested elsewhere.
        "OMS_RATE_LIMIT_PER_SECOND": "100000",
        "OMS_RATE_LIMIT_BURST": "100000",
    }
    processes = [
        subprocess.Popen([sys.executable, "-m", "workers", name], env=env)
        for name in ("api", "worker")
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, processes)
        yield url
    finally:
        for process, name in zip(processes, ("api", "worker"), strict=True):
            stop_process(process, name)


@pytest.fixture(scope="module")
async def stocked(engine: AsyncEngine) -> list[str]:
    """SKUs that generated orders are pointed at, so that some get far."""
    return [await add_product(engine, {FIRST: 1000}) for _ in range(3)]


@pytest.mark.parametrize("label", sorted(OPERATIONS))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_operation_answers_within_its_schema(
    label: str, mode: GenerationMode, api_url: str, keys: dict[str, str]
) -> None:
    operation = OPERATIONS[label]
    negative = mode == GenerationMode.NEGATIVE
    if negative and not operation.definition.raw.get("parameters"):
        if "requestBody" not in operation.definition.raw:
            pytest.skip("no input to get wrong")
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    run_checks = [*CHECKS, *([checks.negative_data_rejection] if negative else [])]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(SETTINGS, max_examples=20)
    def run(case: Case[Any]) -> None:
        # A negative case may leave the key out or spoil it on purpose: then
        # send what it made, which must be refused.
        spoilt = case.meta is not None and case.meta.is_negative_at(
            ParameterLocation.HEADER
        )
        keyed = not negative or ("Authorization" in (case.headers or {}) and not spoilt)
        case.call_and_validate(
            base_url=api_url, headers=headers if keyed else {}, checks=run_checks
        )

    run()


def test_following_the_links(
    api_url: str, keys: dict[str, str], stocked: list[str]
) -> None:
    """Create orders, then follow the schema's links: read, amend, hold, cancel."""
    create = OPERATIONS["POST /v1/orders"]
    links = create.definition.raw["responses"]["201"]["links"]
    by_id = {op.definition.raw["operationId"]: op for op in OPERATIONS.values()}
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    created = []

    # Every draw is made before the first call, so that what is generated never
    # depends on what the API answered (Hypothesis replays the same draws).
    steps = st.lists(
        st.sampled_from(sorted(links)).flatmap(
            lambda name: (
                by_id[links[name]["operationId"]]
                .as_strategy(path_parameters={"reference": "placeholder"})
                .map(lambda case: (links[name], case))
            )
        ),
        min_size=1,
        max_size=4,
    )

    @given(case=create.as_strategy(), follow=steps)
    @settings(SETTINGS, max_examples=25)
    def run(case: Case[Any], follow: list[tuple[dict[str, Any], Case[Any]]]) -> None:
        _orderable(case, stocked)
        response = case.call_and_validate(
            base_url=api_url, headers=headers, checks=CHECKS
        )
        if response.status_code != 201:
            return
        created.append(response.json()["id"])
        for link, step in follow:
            step.path_parameters = {
                key: _resolve(expression, response.json())
                for key, expression in link["parameters"].items()
            }
            step.call_and_validate(base_url=api_url, headers=headers, checks=CHECKS)

    run()
    assert created, "no generated order was taken in: nothing was followed"


def _resolve(expression: str, body: Any) -> Any:
    """`$response.body#/a/0/b` of an OpenAPI link, against a response body."""
    prefix = "$response.body#"
    assert expression.startswith(prefix), expression
    for part in expression.removeprefix(prefix).split("/")[1:]:
        body = body[int(part)] if isinstance(body, list) else body[part]
    return body


def _orderable(case: Case[Any], skus: list[str]) -> None:
    """Point a generated order at SKUs in stock, in a currency they are sold in."""
    body = case.body
    if not isinstance(body, dict):
        return
    lines = body.get("lines")
    if not isinstance(lines, list):
        return
    body["currency"] = "EUR"
    body["lines"] = [
        {**line, "sku": sku}
        for line, sku in zip(lines, skus, strict=False)
        if isinstance(line, dict)
    ]
