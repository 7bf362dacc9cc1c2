"""docker-compose.yml and the Dockerfile, checked without a Docker engine:
they parse, name only settings and commands that exist, and fit together."""

import json
import re
import tomllib
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.workers.deployment import (
    ROOT,
    compose,
    config,
    dashboard,
    dashboard_sql,
    dockerfile,
    oms_services,
)
from workers.cli import build_parser
from workers.queues import Domain
from workers.settings import Settings

KNOWN_SETTINGS = {f"OMS_{name.upper()}" for name in Settings.model_fields}


def test_every_service_of_our_image_sets_only_settings_the_code_reads() -> None:
    services = oms_services()

    assert set(services) == {
        "migrate",
        "seed",
        "api",
        "worker",
        "payments-worker",
        "codec-server",
    }
    for name, service in services.items():
        oms_vars = {key for key in service["environment"] if key.startswith("OMS_")}
        assert oms_vars <= KNOWN_SETTINGS, (
            f"{name}: unknown {oms_vars - KNOWN_SETTINGS}"
        )
        assert {"OMS_DATABASE_URL", "OMS_TEMPORAL_ADDRESS"} <= oms_vars
        assert "build" in service, f"{name} does not build the image"


def test_every_command_of_our_image_is_a_real_oms_subcommand() -> None:
    parser = build_parser()

    for service in oms_services().values():
        args = parser.parse_args(service["command"])
        assert args.command in {"migrate", "seed", "api", "worker", "codec-server"}


def test_the_worker_services_together_poll_every_task_queue() -> None:
    parser = build_parser()
    polled: set[Domain] = set()

    for service in oms_services().values():
        args = parser.parse_args(service["command"])
        if args.command == "worker":
            polled |= args.queues
            assert "healthcheck" in service

    assert polled == set(Domain)
    env = oms_services()["api"]["environment"]
    configured = Settings.model_validate(
        {
            name: env[f"OMS_{name.upper()}"]
            for name in Settings.model_fields
            if name.endswith("task_queue")
        }
    )
    assert len({configured.task_queue(domain) for domain in Domain}) == len(Domain)


def test_workers_are_given_time_to_drain_before_docker_kills_them() -> None:
    for name in ("worker", "payments-worker"):
        service = oms_services()[name]
        grace = int(service["stop_grace_period"].removesuffix("s"))
        drain = float(service["environment"]["OMS_WORKER_SHUTDOWN_SECONDS"])

        assert grace > drain, name


def test_services_find_each_other_by_name() -> None:
    services = compose()["services"]
    env = services["api"]["environment"]

    assert env["OMS_TEMPORAL_ADDRESS"].split(":")[0] == "temporal"
    assert "@postgresql:5432/oms" in env["OMS_DATABASE_URL"]
    assert services["api"]["ports"] == [f"{env['OMS_API_PORT']}:{env['OMS_API_PORT']}"]
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert "auto-setup" in services["temporal"]["image"]
    api_waits_for = services["api"]["depends_on"]
    assert api_waits_for["migrate"]["condition"] == "service_completed_successfully"
    assert api_waits_for["temporal"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_long_running_services_restart_and_one_shot_jobs_do_not_loop() -> None:
    for name, service in compose()["services"].items():
        if name in ("migrate", "seed"):
            assert service["restart"] == "on-failure", name
        else:
            assert service["restart"] == "unless-stopped", name


def test_no_secret_is_written_in_the_compose_file() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    services = compose()["services"]

    secret_vars = ("POSTGRES_PASSWORD", "POSTGRES_PWD", "OMS_CODEC_KEYS")
    for service in services.values():
        for key, value in service.get("environment", {}).items():
            if key in secret_vars or "PASSWORD" in key:
                assert str(value).startswith("${"), key
    assert "${POSTGRES_PASSWORD:?" in raw
    assert re.search(r"postgresql://oms:\$\{POSTGRES_PASSWORD:\?", raw)


def test_the_temporal_ui_calls_the_codec_server_it_may(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = compose()["services"]
    codec = services["codec-server"]
    port = codec["environment"]["OMS_CODEC_PORT"]
    ui_port = services["temporal-ui"]["ports"][0].split(":")[0]

    endpoint = services["temporal-ui"]["environment"]["TEMPORAL_CODEC_ENDPOINT"]
    assert endpoint == f"http://localhost:{port}"
    assert codec["ports"] == [f"{port}:{port}"]
    monkeypatch.setenv(
        "OMS_CODEC_CORS_ORIGINS", codec["environment"]["OMS_CODEC_CORS_ORIGINS"]
    )
    origins = Settings(_env_file=None).codec_cors_origins
    assert f"http://localhost:{ui_port}" in origins
    # Every process that touches payloads encrypts them with the same keys.
    for name in ("api", "worker", "payments-worker", "codec-server"):
        assert "OMS_CODEC_KEYS" in services[name]["environment"]


def test_prometheus_scrapes_every_worker_replica_where_it_serves_metrics() -> None:
    scrape = yaml.safe_load(config("prometheus"))["scrape_configs"]
    workers = next(job for job in scrape if job["job_name"] == "oms-workers")
    discovery = workers["dns_sd_configs"][0]

    worker_services = {
        name
        for name, service in oms_services().items()
        if service["command"][0] == "worker"
    }
    assert set(discovery["names"]) == worker_services
    for name in worker_services:
        address = oms_services()[name]["environment"]["OMS_WORKER_METRICS_ADDRESS"]
        assert address.endswith(f":{discovery['port']}")
    temporal = next(job for job in scrape if job["job_name"] == "temporal-server")
    endpoint = compose()["services"]["temporal"]["environment"]["PROMETHEUS_ENDPOINT"]
    assert temporal["static_configs"][0]["targets"] == [
        f"temporal:{endpoint.split(':')[1]}"
    ]


def test_grafana_reads_prometheus_and_the_read_model() -> None:
    sources = yaml.safe_load(config("grafana-datasources"))["datasources"]
    by_uid = {source["uid"]: source for source in sources}
    grafana_env = compose()["services"]["grafana"]["environment"]

    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["read-model"]["url"] == "postgresql:5432"
    password = by_uid["read-model"]["secureJsonData"]["password"]
    assert password.strip("${}") in grafana_env
    used = {
        panel["datasource"]["uid"]
        for panel in dashboard()["panels"]
        if "datasource" in panel
    }
    assert used == set(by_uid)
    assert compose()["services"]["grafana"]["profiles"] == ["monitoring"]


async def test_the_dashboards_sql_runs_on_the_read_model(engine: AsyncEngine) -> None:
    statements = dashboard_sql()

    assert statements
    async with engine.connect() as conn:
        for sql in statements:
            # Grafana's time-range macro, as Grafana expands it.
            expanded = re.sub(
                r"\$__timeFilter\((\w+)\)",
                r"\1 BETWEEN :start AND now()",
                sql,
            )
            rows = await conn.execute(
                text(expanded), {"start": datetime(2000, 1, 1, tzinfo=UTC)}
            )
            assert rows.keys()


def test_the_image_is_built_in_stages_and_runs_as_a_user() -> None:
    steps = dockerfile()
    froms = [args for op, args in steps if op == "FROM"]
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]

    assert len(froms) == 2 and froms[0].endswith(" AS build")
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert json.loads(dict(final)["ENTRYPOINT"]) == ["oms"]
    assert build_parser().parse_args(json.loads(dict(final)["CMD"])).command == "api"
    # The final stage installs wheels only: no compiler, no network.
    installs = [args for op, args in final if op == "RUN" and "pip install" in args]
    assert installs and all("--no-index" in args for args in installs)


def test_the_image_holds_every_package_and_nothing_local() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {
        pattern.rstrip("*")
        for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    }
    copied = {
        args.split()[0]
        for op, args in dockerfile()
        if op == "COPY" and "--from" not in args
    }
    ignored = (ROOT / ".dockerignore").read_text().split()

    assert packages <= copied
    assert {".venv", ".oms", ".git", ".env", "tests"} <= set(ignored)
    exposed = {args for op, args in dockerfile() if op == "EXPOSE"}
    api = oms_services()["api"]["environment"]
    assert exposed == {f"{api['OMS_API_PORT']} {api['OMS_CODEC_PORT']}"}


def test_the_env_example_names_every_variable_the_compose_file_requires() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", raw))
    example = (ROOT / "docs" / "compose.env.example").read_text()

    named = set(re.findall(r"^(\w+)=", example, re.MULTILINE))

    assert required <= named
