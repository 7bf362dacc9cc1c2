"""`oms dev` as a user runs it: up, an order to delivered, Ctrl-C, down.

The stack under test uses this session's PostgreSQL and Temporal (through
OMS_DATABASE_URL and OMS_TEMPORAL_ADDRESS), so it starts only the worker and
API processes of its own.
"""

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from models.orders import OrderStatus, workflow_id_for
from tests.conftest import FIRST, MakeProduct
from tests.helpers import RESULT_TIMEOUT, free_port, order_body, until_query
from workers.embedded import running_dev_database
from workers.settings import Settings
from workflows.orders import OrderWorkflow


class DevStack:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.log: list[str] = []

    async def read_until(self, marker: str) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if marker in line:
                return
        raise AssertionError("oms dev exited:\n" + "\n".join(self.log[-30:]))


@pytest.fixture
async def dev_stack(
    settings: Settings, client: Client, tmp_path: Path
) -> AsyncIterator[DevStack]:
    port = free_port()
    env = {
        **os.environ,
        "OMS_DATABASE_URL": settings.database_url,
        "OMS_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "OMS_TEMPORAL_TASK_QUEUE": f"oms-dev-test-{uuid.uuid4().hex[:8]}",
        "OMS_API_PORT": str(port),
        "OMS_CODEC_PORT": str(free_port()),
        "OMS_CODEC_KEYS": json.dumps(settings.codec_secrets),
        "OMS_CODEC_KEY_ID": settings.codec_key_id,
        "OMS_DATA_DIR": str(tmp_path / "data"),
        "OMS_SANDBOX_PICK_SECONDS": "0.05",
        "OMS_SANDBOX_PACK_SECONDS": "0.05",
        "OMS_SANDBOX_TRANSIT_SECONDS": "0.1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        "dev",
        env=env,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    stack = DevStack(process, port)
    try:
        yield stack
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_oms_dev_takes_an_order_to_delivered_and_stops_on_sigterm(
    dev_stack: DevStack, client: Client, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 3})
    await asyncio.wait_for(dev_stack.read_until("Press Ctrl-C to stop"), RESULT_TIMEOUT)
    assert any(f"{dev_stack.url}/docs" in line for line in dev_stack.log)

    key = next(
        line.split("admin key", 1)[1].strip()
        for line in dev_stack.log
        if "admin key" in line
    )
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=dev_stack.url, headers=headers) as http:
        created = await http.post("/v1/orders", json=order_body(sku))
        assert created.status_code == 201, created.text
        order_id = created.json()["id"]
        await until_query(
            client.get_workflow_handle_for(
                OrderWorkflow.run, workflow_id_for(order_id)
            ),
            OrderWorkflow.current_state,
            lambda state: state.status == OrderStatus.DELIVERED,
        )
        order = (await http.get(f"/v1/orders/{order_id}")).json()
    # Delivered, and open to returns for the default 14 days.
    assert order["status"] == "delivered"
    assert "return" in order["allowed_actions"]

    dev_stack.process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(dev_stack.read_until("oms dev stopped"), RESULT_TIMEOUT)
    assert await asyncio.wait_for(dev_stack.process.wait(), RESULT_TIMEOUT) == 0
    assert any("worker stopped" in line for line in dev_stack.log)


def test_commands_find_the_database_of_a_running_oms_dev(tmp_path: Path) -> None:
    pgdata = tmp_path / "postgres"
    pgdata.mkdir()
    assert running_dev_database(tmp_path) is None

    (pgdata / ".s.PGSQL.5433.lock").touch()
    assert running_dev_database(tmp_path) is None  # a stale lock, no server
    (pgdata / ".s.PGSQL.5433").touch()

    assert running_dev_database(tmp_path) == (
        f"postgresql://postgres@/oms?host={pgdata}&port=5433"
    )
