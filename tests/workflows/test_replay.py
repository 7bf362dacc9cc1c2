"""Replay: today's workflow code must replay the histories of earlier orders.

`histories/` keeps histories recorded from real runs. A change to workflow
code that would make a running order take a different path fails here; guard
it with `workflow.patched` instead. After such a guarded change, record fresh
histories next to the old ones with `pytest tests/workflows/test_replay.py
--record-histories`.
"""

import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from models.orders import workflow_id_for
from tests.conftest import FIRST, MakeProduct
from tests.helpers import finished, place_order, start_order
from workers.settings import Settings
from workers.worker import WORKFLOWS

HISTORIES = Path(__file__).parent / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)


@pytest.mark.parametrize(
    "path", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.stem
)
async def test_saved_history_replays(path: Path) -> None:
    saved = json.loads(path.read_text())
    history = WorkflowHistory.from_json(saved["workflow_id"], saved["history"])

    await replayer().replay_workflow(history)


async def test_fresh_histories_replay_and_can_be_recorded(
    client: Client,
    worker: Worker,
    settings: Settings,
    engine: AsyncEngine,
    make_product: MakeProduct,
    request: pytest.FixtureRequest,
) -> None:
    sku = await make_product({FIRST: 5})
    orders = {
        "order_completed": place_order([(sku, 1)]),
        "order_declined": place_order([(sku, 1)], token="tok_decline"),
        "order_out_of_stock": place_order([(sku, 50)]),
    }
    histories: dict[str, WorkflowHistory] = {}
    for name, order in orders.items():
        handle = await start_order(client, order, settings.temporal_task_queue)
        state = await finished(handle)
        histories[name] = await handle.fetch_history()
        for shipment in state.shipments:
            child = client.get_workflow_handle(
                f"{workflow_id_for(order.order_id)}-shipment-{shipment.number}"
            )
            histories[f"{name}_shipment"] = await child.fetch_history()

    for history in histories.values():
        await replayer().replay_workflow(history)

    if request.config.getoption("--record-histories"):
        HISTORIES.mkdir(exist_ok=True)
        for name, history in histories.items():
            saved = {
                "workflow_id": history.workflow_id,
                "history": json.loads(history.to_json()),
            }
            (HISTORIES / f"{name}.json").write_text(json.dumps(saved, indent=1) + "\n")
