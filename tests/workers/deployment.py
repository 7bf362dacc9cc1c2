"""The deployment files as data: docker-compose.yml, its Grafana dashboard,
the Dockerfile (no Docker engine is needed to read them)."""

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "oms:local"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def oms_services() -> dict[str, dict[str, Any]]:
    """The services that run our image, by name."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == IMAGE
    }


def config(name: str) -> str:
    """An inline config of the compose file, as the container sees it."""
    # `$$` is how compose writes a literal `$`.
    content: str = compose()["configs"][name]["content"]
    return content.replace("$$", "$")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(config("grafana-dashboard"))
    return loaded


def dashboard_targets(datasource: str) -> list[dict[str, Any]]:
    return [
        target
        for panel in dashboard()["panels"]
        if panel["datasource"]["type"] == datasource
        for target in panel["targets"]
    ]


def dashboard_metrics() -> set[str]:
    """The Prometheus metric names the dashboard's queries read."""
    names: set[str] = set()
    for target in dashboard_targets("prometheus"):
        names |= set(re.findall(r"\b(temporal_[a-z_]+)\b", target["expr"]))
    return names


def dashboard_sql() -> list[str]:
    return [
        target["rawSql"]
        for target in dashboard_targets("grafana-postgresql-datasource")
    ]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per line, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]
