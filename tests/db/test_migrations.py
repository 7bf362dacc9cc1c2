"""Migrations: they build exactly the tables the code declares, and undo cleanly."""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from db.engine import driver_url
from db.migrate import alembic_config
from db.tables import metadata
from models.customers import customer_id_for


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


def test_upgrade_makes_a_card_for_each_customer_of_earlier_orders(
    scratch_database: str,
) -> None:
    config = alembic_config(scratch_database)
    engine = create_engine(driver_url(scratch_database))
    command.upgrade(config, "0005")
    day = datetime(2026, 11, 1, tzinfo=UTC)
    berlin = {"country": "DE", "city": "Berlin", "postal_code": "10115"}
    hamburg = {"country": "DE", "city": "Hamburg", "postal_code": "20095"}
    earlier = [
        ("Ada@Example.com", "Ada", "+49 30 111", berlin, day),
        ("bob@example.com", "Bob", "+1 (555) 0100", berlin, day),
        ("ada@example.COM", "Ada L.", None, hamburg, day + timedelta(days=1)),
        ("ADA@example.com", "Ada Lovelace", None, berlin, day + timedelta(days=2)),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO orders (id, number, channel, status, payment_status,"
                " payment_method, customer_email, customer_name, customer_phone,"
                " shipping_address, currency, subtotal_minor, shipping_minor,"
                " total_minor, created_at) VALUES (:id, :number, 'web', 'received',"
                " 'pending', 'card', :email, :name, :phone, CAST(:address AS jsonb),"
                " 'EUR', 100, 0, 100, :at)"
            ),
            [
                {
                    "id": str(uuid.uuid4()),
                    "number": f"SO-{n}",
                    "email": email,
                    "name": name,
                    "phone": phone,
                    "address": json.dumps(address),
                    "at": at,
                }
                for n, (email, name, phone, address, at) in enumerate(earlier)
            ],
        )

    command.upgrade(config, "head")
    with engine.connect() as conn:
        cards = {
            row.email: row
            for row in conn.execute(text("SELECT * FROM customers ORDER BY email"))
        }
        order_customers = {
            (row.customer_email, str(row.customer_id))
            for row in conn.execute(
                text("SELECT customer_email, customer_id FROM orders")
            )
        }
    engine.dispose()

    assert set(cards) == {"ada@example.com", "bob@example.com"}
    ada, bob = cards["ada@example.com"], cards["bob@example.com"]
    assert str(ada.id) == customer_id_for("ada@example.com")
    assert (ada.name, ada.phone) == ("Ada Lovelace", "+4930111")
    assert ada.addresses == [berlin, hamburg]
    assert (ada.first_order_at, ada.last_order_at) == (day, day + timedelta(days=2))
    assert (bob.name, bob.phone, bob.addresses) == ("Bob", "+15550100", [berlin])
    # PostgreSQL derives each order's customer exactly as the code does.
    assert order_customers == {(email, customer_id_for(email)) for email, *_ in earlier}
