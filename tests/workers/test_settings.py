"""Settings from the environment, and the compose file that sets them."""

from pathlib import Path

import pytest
import yaml

from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_settings_read_oms_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMS_DATABASE_URL", "postgresql://db/oms")
    monkeypatch.setenv("OMS_TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("OMS_API_PORT", "9000")
    monkeypatch.setenv("OMS_DATA_DIR", "/var/lib/oms")

    settings = Settings()

    assert settings.database_url == "postgresql://db/oms"
    assert settings.temporal_address == "temporal:7233"
    assert settings.api_port == 9000
    assert settings.data_dir == Path("/var/lib/oms")
    assert not settings.embedded_database and not settings.embedded_temporal


def test_defaults_are_the_embedded_dev_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OMS_DATABASE_URL", "OMS_TEMPORAL_ADDRESS", "OMS_API_PORT"):
        monkeypatch.delenv(name, raising=False)

    settings = Settings(_env_file=None)

    assert settings.embedded_database and settings.embedded_temporal
    assert (settings.api_port, settings.temporal_ui_port) == (8000, 8233)
    assert settings.data_dir == Path(".oms")


def test_compose_sets_only_settings_the_code_reads() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    known = {f"OMS_{name.upper()}" for name in Settings.model_fields}

    app_services = {
        name: service
        for name, service in compose["services"].items()
        if any(key.startswith("OMS_") for key in service.get("environment", {}))
    }

    assert set(app_services) == {"migrate", "api", "worker", "codec-server"}
    for name, service in app_services.items():
        oms_vars = {k for k in service["environment"] if k.startswith("OMS_")}
        assert oms_vars <= known, f"{name} sets unknown settings {oms_vars - known}"
        assert {"OMS_DATABASE_URL", "OMS_TEMPORAL_ADDRESS"} <= oms_vars
        assert service["command"][-1].split("&&")[-1].strip().startswith("oms ")


def test_compose_wires_services_to_each_other() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = services["api"]["environment"]

    host = env["OMS_TEMPORAL_ADDRESS"].split(":")[0]
    assert host in services
    assert "@postgresql:" in env["OMS_DATABASE_URL"]
    assert "postgresql" in services
    assert services["api"]["ports"] == [f"{env['OMS_API_PORT']}:{env['OMS_API_PORT']}"]


def test_compose_points_the_temporal_ui_at_the_codec_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
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
    for name in ("api", "worker", "codec-server"):
        assert "OMS_CODEC_KEYS" in services[name]["environment"]


def test_ci_runs_the_readme_test_command_as_written() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    marker = readme.index("<!-- test-command -->")
    command = readme[marker + 2]

    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert command.startswith("python3.11 -m venv .venv")
    assert command in ci_lines
