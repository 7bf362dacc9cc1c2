"""The no-op step of the benchmark's reference workflow."""

from temporalio import activity


@activity.defn(name="reference_step")
async def reference_step(step: int) -> int:
    return step
