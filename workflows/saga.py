"""Compensations registered step by step and run once, newest first."""

from collections.abc import Awaitable, Callable

from temporalio import workflow

Compensation = Callable[[], Awaitable[object]]


class Compensations:
    """What to undo if the order cannot go on, in the order it must be undone."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Compensation]] = []

    def add(self, name: str, undo: Compensation) -> None:
        self._steps.append((name, undo))

    def discard(self, name: str) -> None:
        """Forget a compensation that no longer applies (a captured payment)."""
        self._steps = [step for step in self._steps if step[0] != name]

    async def run(self) -> None:
        # Pop before running: a step that ran is never run again, even if a
        # later one fails and the caller runs the remaining steps once more.
        while self._steps:
            name, undo = self._steps.pop()
            workflow.logger.info("compensating: %s", name)
            await undo()
