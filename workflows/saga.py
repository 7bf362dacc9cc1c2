"""Compensations registered step by step and run once, newest first."""

from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError

Compensation = Callable[[], Awaitable[object]]


class Compensations:
    """What to undo if the order cannot go on, in the order it must be undone."""

    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._steps: list[tuple[str, Compensation]] = []

    def add(self, name: str, undo: Compensation) -> None:
        self._steps.append((name, undo))

    def discard(self, name: str) -> None:
        """Forget a compensation that no longer applies (a captured payment)."""
        self._steps = [step for step in self._steps if step[0] != name]

    async def run(self) -> list[str]:
        """Undo every step, newest first; the names of those that failed.

        Each undo retries until it succeeds; one that fails for good (a bug,
        data the database refuses) does not stop the others.
        """
        failed = []
        # Pop before running: a step that ran is never run again.
        while self._steps:
            name, undo = self._steps.pop()
            workflow.logger.info("%s: compensating: %s", self._owner, name)
            try:
                await undo()
            except ActivityError as error:
                workflow.logger.error(
                    "%s: compensation %s failed: %s", self._owner, name, error.cause
                )
                failed.append(name)
        return failed
