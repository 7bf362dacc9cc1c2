"""The `oms` command."""

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from workers.logs import configure_logging
from workers.queues import Domain, parse_domains
from workers.settings import Settings, get_settings

logger = logging.getLogger("oms")


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
    from workers.temporal import TemporalConfigError, connect_options

    try:
        connect_options(settings)
    except TemporalConfigError as error:
        raise SystemExit(f"oms {command}: {error}") from None


def _exit_at_once(code: int) -> NoReturn:
    """Exit once everything has stopped, without the interpreter's teardown.

    The Temporal client's native threads can outlive the event loop, and
    tearing the interpreter down under them sometimes aborts the process
    (temporalio/sdk-python#300), which would turn a clean stop into a crash.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


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
    _exit_at_once(0)


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from workers.worker import run_worker

    _require_servers(settings, "worker")
    asyncio.run(run_worker(settings, args.queues))
    _exit_at_once(0)


def _codec_server(settings: Settings) -> int:
    import uvicorn

    from workers.codec_server import create_codec_app

    uvicorn.run(
        create_codec_app(settings),
        host=settings.api_host,
        port=settings.codec_port,
        log_config=None,
    )
    return 0


def _database_url(settings: Settings, command: str) -> str:
    """OMS_DATABASE_URL, or else the embedded server of a running `oms dev`."""
    from workers.embedded import running_dev_database

    url = settings.database_url or running_dev_database(settings.data_dir)
    if not url:
        raise SystemExit(
            f"oms {command}: set OMS_DATABASE_URL (or start `oms dev` in "
            f"{settings.data_dir})"
        )
    return url


def _migrate(settings: Settings) -> int:
    from db.migrate import upgrade

    upgrade(_database_url(settings, "migrate"))
    return 0


def _seed(settings: Settings) -> int:
    from db.seed import seed_database

    asyncio.run(seed_database(_database_url(settings, "seed")))
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from api.access import create_key, revoke_key
    from db.engine import create_engine
    from models.rules import Role

    url = _database_url(settings, "keys")

    async def run() -> int:
        engine = create_engine(url, pool_size=1)
        try:
            if args.action == "create":
                key = await create_key(
                    engine, name=args.name, role=Role(args.role), channel=args.channel
                )
                sys.stdout.write(key + "\n")
                return 0
            if await revoke_key(engine, args.name):
                logger.info("key %s revoked", args.name)
                return 0
            logger.error("no live key named %s", args.name)
            return 1
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except ValueError as error:
        raise SystemExit(f"oms keys: {error}") from None
    except OperationalError as error:
        raise SystemExit(f"oms keys: cannot reach the database: {error.orig}") from None


WORKER_HELP = "run Temporal workers for some or all task queues"
RECONCILE_HELP = "check stock, money and the read model against each other"
BENCH_HELP = "measure orders per second against a bare reference workflow"


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from workers import bench

    if args.scenario == "reports":
        if args.url:
            raise SystemExit("oms bench: --scenario reports runs on its own database")
        from workers import bench_reports

        results = bench_reports.run(args.orders, args.seed, args.repeats)
        args.output.write_text(json.dumps(results, indent=2) + "\n")
        sys.stdout.write(
            bench_reports.table(results) + f"\n\nfigures written to {args.output}\n"
        )
        return 0

    def run(stack: bench.Stack) -> dict[str, Any]:
        if args.scenario == "contention":
            return asyncio.run(
                bench.measure_contention(stack, args.orders, args.concurrency)
            )
        if args.scenario == "parked":
            return asyncio.run(
                bench.measure_parked(stack, args.orders, args.concurrency, args.seed)
            )
        return asyncio.run(
            bench.measure(stack, args.orders, args.concurrency, args.seed, args.rate)
        )

    if args.url:
        if not args.key:
            raise SystemExit("oms bench: --url needs --key (an admin key)")
        _require_servers(settings, "bench")
        results = run(bench.Stack(args.url.rstrip("/"), args.key, settings, None))
    else:
        # Parked orders wait for a carrier that takes a month.
        overrides = (
            {"OMS_SANDBOX_TRANSIT_SECONDS": str(30 * 86_400)}
            if args.scenario == "parked"
            else {}
        )
        with bench.own_stack(settings, overrides) as stack:
            results = run(stack)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    summary = (
        bench.table(results)
        if args.scenario == "lifecycle"
        else json.dumps(results, indent=2)
    )
    sys.stdout.write(summary + f"\n\nfigures written to {args.output}\n")
    return 0


def _dev_codec(settings: Settings, address: str) -> Settings:
    """Settings for Temporal at `address`, with the payload keys `oms dev`
    made in the data dir when none are configured."""
    from pydantic import SecretStr

    update: dict[str, object] = {"temporal_address": address}
    key_file = settings.data_dir / "codec-keys.json"
    if not settings.codec_keys and key_file.exists():
        keys = json.loads(key_file.read_text())
        update["codec_keys"] = {k: SecretStr(v) for k, v in keys.items()}
        update["codec_key_id"] = max(keys)
    return settings.model_copy(update=update)


def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from db.engine import create_engine
    from workers.reconcile import check_database, check_workflows, report
    from workers.temporal import connect

    url = _database_url(settings, "reconcile")
    # Without a configured cluster: the dev server of a running `oms dev`.
    address = settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"

    async def run() -> int:
        engine = create_engine(url, pool_size=2)
        try:
            found = await check_database(engine)
            if args.sample:
                client = await connect(_dev_codec(settings, address))
                found += await check_workflows(engine, client, args.sample)
        finally:
            await engine.dispose()
        sys.stdout.write(report(found) + "\n")
        return 1 if found else 0

    return asyncio.run(run())


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, 0 or more")
    return int(text)


def _positive(text: str) -> int:
    if _count(text) == 0:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return int(text)


def _domains(text: str) -> frozenset[Domain]:
    try:
        return parse_domains(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


COMMANDS = {
    "dev": (_dev, "start everything on this machine (embedded defaults)"),
    "api": (_api, "run the HTTP API against configured servers"),
    "codec-server": (_codec_server, "serve the payload codec for the Temporal UI"),
    "migrate": (_migrate, "apply database migrations"),
    "seed": (_seed, "load the demo catalogue into an empty database"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oms",
        description="Order management system. Settings come from OMS_* variables.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, description=help_text)
    worker = commands.add_parser(
        "worker",
        help=WORKER_HELP,
        description=f"{WORKER_HELP}. Each queue's name comes from its setting "
        "(OMS_TEMPORAL_TASK_QUEUE for orders, OMS_<DOMAIN>_TASK_QUEUE for the rest).",
    )
    worker.add_argument(
        "--queues",
        type=_domains,
        default=frozenset(Domain),
        metavar="LIST",
        help="comma-separated task queues to poll, of "
        f"{','.join(Domain)} (default: all)",
    )
    bench = commands.add_parser(
        "bench",
        help=BENCH_HELP,
        description=f"{BENCH_HELP}, on the same Temporal server; starts its own "
        "stack on embedded defaults unless --url names a running one",
    )
    bench.add_argument(
        "--scenario",
        choices=["lifecycle", "contention", "parked", "reports"],
        default="lifecycle",
        help="lifecycle: throughput and latency against the reference (default); "
        "contention: orders racing for 25 units; parked: the worker's memory as "
        "orders wait for their carrier; reports: the reports' latency over "
        "--orders generated orders in a PostgreSQL of its own",
    )
    bench.add_argument("--orders", type=_positive, default=300, help="how many (300)")
    bench.add_argument(
        "--concurrency",
        type=_positive,
        default=30,
        help="orders in flight at once (30)",
    )
    bench.add_argument(
        "--rate",
        type=float,
        help="start this many orders per second (still at most --concurrency in "
        "flight); default: as fast as they complete",
    )
    bench.add_argument("--seed", type=int, default=1, help="of the order mix (1)")
    bench.add_argument(
        "--repeats",
        type=_positive,
        default=20,
        help="calls of each report, after one to warm up (reports scenario; 20)",
    )
    bench.add_argument("--url", help="a running API instead of a stack of its own")
    bench.add_argument("--key", help="an API key for --url")
    bench.add_argument(
        "--output",
        type=Path,
        default=Path("bench-results.json"),
        help="where the figures go as JSON (bench-results.json)",
    )
    reconcile = commands.add_parser(
        "reconcile",
        help=RECONCILE_HELP,
        description=f"{RECONCILE_HELP}; print what disagrees, exit 1 if anything",
    )
    reconcile.add_argument(
        "--sample",
        type=_count,
        default=50,
        metavar="N",
        help="compare N random orders with their workflows (0: skip; default 50)",
    )
    keys = commands.add_parser(
        "keys", help="create or revoke API keys", description="Manage API keys."
    )
    key_actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_actions.add_parser(
        "create", help="create a key and print it (its only line on stdout)"
    )
    create.add_argument(
        "--role",
        required=True,
        choices=["integrator", "support", "warehouse", "admin", "viewer"],
    )
    create.add_argument("--channel", help="the integrator's channel")
    create.add_argument("--name", required=True, help="who holds the key")
    revoke = key_actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("name", help="the key's name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as error:
        problems = "; ".join(
            f"OMS_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            for e in error.errors()
        )
        raise SystemExit(f"oms {args.command}: invalid settings: {problems}") from None
    configure_logging(args.command, settings.log_level, settings.log_format)
    if args.command == "keys":
        return _keys(settings, args)
    if args.command == "worker":
        return _worker(settings, args)
    if args.command == "reconcile":
        return _reconcile(settings, args)
    if args.command == "bench":
        return _bench(settings, args)
    run, _ = COMMANDS[args.command]
    return run(settings)
