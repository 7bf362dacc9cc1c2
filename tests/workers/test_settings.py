"""Settings from the environment, as the README documents them."""

from pathlib import Path

import pytest

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


def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # What `OMS_WEBHOOK_SECRETS: ${OMS_WEBHOOK_SECRETS:-}` in compose gives.
    monkeypatch.setenv("OMS_WEBHOOK_SECRETS", "")
    monkeypatch.setenv("OMS_CODEC_KEYS", "")
    monkeypatch.setenv("OMS_DELIVERY_FREE_OVER", "never")

    settings = Settings(_env_file=None)

    assert set(settings.webhook_secrets) == {"sandbox", "sandbox-express"}
    assert settings.codec_keys == {}
    assert settings.delivery_free_over is None


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
