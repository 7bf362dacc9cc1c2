"""Settings from the environment, as the README documents them."""

from pathlib import Path

import pytest

from workers.cli import main
from workers.settings import Settings, get_settings

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


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `OMS_WEBHOOK_SECRETS: ${OMS_WEBHOOK_SECRETS:-}` in compose gives.
    monkeypatch.setenv("OMS_WEBHOOK_SECRETS", "")
    monkeypatch.setenv("OMS_CODEC_KEYS", "")
    monkeypatch.setenv("OMS_DELIVERY_FREE_OVER", "never")

    settings = Settings(_env_file=None)

    assert set(settings.webhook_secrets) == {"sandbox", "sandbox-express"}
    assert settings.codec_keys == {}
    assert settings.delivery_free_over is None


@pytest.mark.parametrize("address", ["localhost:9464", "0.0.0.0", "1.2.3.4:x"])
def test_a_metrics_address_is_an_ip_and_a_port(address: str) -> None:
    with pytest.raises(ValueError, match="an IP address and a port"):
        Settings(_env_file=None, worker_metrics_address=address)

    assert Settings(_env_file=None, worker_metrics_address="[::1]:9464")


def test_the_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()

    undocumented = [
        f"OMS_{name.upper()}"
        for name in Settings.model_fields
        if f"| `OMS_{name.upper()}` |" not in readme
    ]

    assert undocumented == []


def test_ci_runs_the_readme_test_command_as_written() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    marker = readme.index("<!-- test-command -->")
    command = readme[marker + 2]

    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert command.startswith("python3.11 -m venv .venv")
    assert command in ci_lines


def test_the_command_names_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMS_WORKER_METRICS_ADDRESS", "localhost:9464")
    get_settings.cache_clear()

    with pytest.raises(SystemExit) as stopped:
        main(["worker"])
    get_settings.cache_clear()

    assert str(stopped.value) == (
        "oms worker: invalid settings: OMS_WORKER_METRICS_ADDRESS: Value error, "
        "must be an IP address and a port, as 0.0.0.0:9464"
    )
