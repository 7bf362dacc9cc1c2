"""Run Alembic migrations from code (`oms migrate`, `oms dev`, the tests)."""

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

from db.engine import driver_url

logger = logging.getLogger(__name__)

_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(database_url: str) -> Config:
    config = Config(str(_INI))
    config.set_main_option("script_location", str(_INI.parent / "migrations"))
    # ConfigParser treats % as interpolation; escape it for URLs with %-encoding.
    config.set_main_option(
        "sqlalchemy.url", driver_url(database_url).replace("%", "%%")
    )
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`; a no-op when it is there already."""
    logger.info("applying database migrations up to %s", revision)
    command.upgrade(alembic_config(database_url), revision)
