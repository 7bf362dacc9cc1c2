"""The `oms` command."""

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from workers.settings import Settings, get_settings

logger = logging.getLogger("oms")


def _configure_logging(role: str, level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s {role:<6} %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Libraries that narrate their internals at INFO: keep their warnings.
    for noisy in ("alembic.runtime.plugins", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _require_servers(settings: Settings, command: str) -> None:
    missing = [
        name
        for name, value in (
            ("OMS_DATABASE_URL", settings.database_url),
            ("OMS_TEMPORAL_ADDRESS", settings.temporal_address),
        )
        if not value
    ]
    if missing:
        raise SystemExit(
            f"oms {command}: set {' and '.join(missing)} "
            "(or run `oms dev`, which starts embedded servers)"
        )


def _dev(settings: Settings) -> int:
    from workers.dev import run_dev

    return run_dev(settings)


def _api(settings: Settings) -> int:
    import uvicorn

    _require_servers(settings, "api")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        proxy_headers=True,
    )
    return 0


def _worker(settings: Settings) -> int:
    from workers.worker import run_worker

    _require_servers(settings, "worker")
    asyncio.run(run_worker(settings))
    return 0


def _migrate(settings: Settings) -> int:
    from db.migrate import upgrade

    if not settings.database_url:
        raise SystemExit("oms migrate: set OMS_DATABASE_URL")
    upgrade(settings.database_url)
    return 0


def _seed(settings: Settings) -> int:
    from db.seed import seed_database

    if not settings.database_url:
        raise SystemExit("oms seed: set OMS_DATABASE_URL")
    asyncio.run(seed_database(settings.database_url))
    return 0


COMMANDS = {
    "dev": (_dev, "start everything on this machine (embedded defaults)"),
    "api": (_api, "run the HTTP API against configured servers"),
    "worker": (_worker, "run the Temporal worker against configured servers"),
    "migrate": (_migrate, "apply database migrations"),
    "seed": (_seed, "load the demo catalogue into an empty database"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="oms",
        description="Order management system. Settings come from OMS_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, description=help_text)
    args = parser.parse_args(argv)
    settings = get_settings()
    _configure_logging(args.command, settings.log_level)
    run, _ = COMMANDS[args.command]
    return run(settings)
