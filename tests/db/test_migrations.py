"""Migrations: they build exactly the tables the code declares, and undo cleanly."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from db.engine import driver_url
from db.migrate import alembic_config
from db.tables import metadata


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(False)


@pytest.fixture
def scratch_database(database_url: str) -> Iterator[str]:
    """An empty database on the test server, dropped afterwards."""
    name = f"oms_migrations_{uuid.uuid4().hex[:8]}"
    admin = _libpq(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(database_url).set(database=name).render_as_string(False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_migrated_schema_matches_the_table_declarations(database_url: str) -> None:
    engine = create_engine(driver_url(database_url))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()

    assert differences == []


def test_downgrade_removes_everything_and_upgrade_restores_it(
    scratch_database: str,
) -> None:
    config = alembic_config(scratch_database)
    engine = create_engine(driver_url(scratch_database))

    command.upgrade(config, "head")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= set(metadata.tables)
    command.downgrade(config, "base")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) == {"alembic_version"}
        assert inspect(conn).get_sequence_names() == []
    command.upgrade(config, "head")
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= set(metadata.tables)
    engine.dispose()
