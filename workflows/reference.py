"""The benchmark's yardstick: a bare workflow with four no-op activities.

`oms bench` runs it on the same Temporal server as the orders, so the
orders' throughput can be read against what the server does with the
least possible work per workflow.
"""

from datetime import timedelta

from temporalio import workflow

STEPS = 4


@workflow.defn
class ReferenceWorkflow:
    @workflow.run
    async def run(self) -> int:
        for step in range(STEPS):
            await workflow.execute_activity(
                "reference_step", step, start_to_close_timeout=timedelta(seconds=30)
            )
        return STEPS
