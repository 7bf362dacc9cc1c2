"""The worker registers every activity the workflows call, each with a policy."""

from sqlalchemy.ext.asyncio import AsyncEngine

from workers.settings import Settings
from workers.worker import activities
from workflows.steps import POLICIES


def test_every_registered_activity_has_a_retry_policy_and_back(
    engine: AsyncEngine, settings: Settings
) -> None:
    names = {activity.__name__ for activity in activities(engine, settings)}

    assert names == set(POLICIES)
