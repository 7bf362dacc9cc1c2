"""`oms bench`'s parts on this session's stack: the reference runs, a mixed
batch of orders is followed to its end, and the table shows both ratios."""

import httpx
from temporalio.client import Client

from models.orders import OrderStatus
from tests.conftest import FIRST, MakeProduct
from workers.bench import run_orders, run_reference, table
from workers.worker import WorkerGroup


async def test_the_reference_workflows_all_complete(client: Client) -> None:
    run = await run_reference(client, 6, 3)

    assert (run.finished, run.errors) == (6, 0)
    assert len(run.start.samples) == len(run.lifecycle.samples) == 6
    assert run.per_second > 0


async def test_a_mixed_batch_of_orders_is_followed_to_its_end(
    api: httpx.AsyncClient,
    client: Client,
    worker: WorkerGroup,
    make_product: MakeProduct,
) -> None:
    skus = [await make_product({FIRST: 100}) for _ in range(3)]

    # Seed 7 draws one declined card and one cancel among twelve orders.
    run = await run_orders(api, client, 12, 4, seed=7, skus=skus, channels=["test"])

    assert (run.finished, run.errors) == (12, 0)
    assert run.outcomes == {
        OrderStatus.COMPLETED: 10,
        OrderStatus.FAILED: 1,
        OrderStatus.CANCELLED: 1,
    }
    assert len(run.lifecycle.samples) == 12


def test_the_table_shows_both_ratios() -> None:
    results = {
        "reference": {
            "per_second": 10.0,
            "start_latency": {"p50_ms": 50, "p90_ms": 80, "p99_ms": 100},
        },
        "lifecycles": {
            "per_second": 2.0,
            "start_latency": {"p50_ms": 100, "p90_ms": 120, "p99_ms": 150},
            "lifecycle_latency": {"p50_ms": 900, "p99_ms": 1500},
            "errors": 0,
            "outcomes": {"completed": 9, "failed": 1},
        },
        "ratios": {
            "orders_per_s_over_reference_per_s": 0.2,
            "create_p99_over_bare_start_p99": 1.5,
        },
        "peak_memory_mb": {"worker": 150.0, "api": 120.0},
    }

    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in table(results).splitlines()[2:]
    }

    assert rows["ratio: lifecycles / reference"] == "0.2"
    assert rows["ratio: create p99 / bare start p99"] == "1.5"
    assert rows["outcomes"] == "completed 9, failed 1"
