"""`oms dev`: the whole system on one machine, on embedded defaults.

Starts PostgreSQL and the Temporal dev server (unless configured to use
running ones), migrates, loads the demo catalogue into an empty database,
then runs the worker and the API as child processes and supervises them.
Ctrl-C or SIGTERM stops everything in reverse order.
"""

import asyncio
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from api.access import create_key, revoke_key
from db.engine import create_engine
from db.migrate import upgrade
from db.seed import seed_database
from models.rules import Role
from workers.codec import new_key
from workers.embedded import (
    EmbeddedError,
    die_with_parent,
    embedded_postgres,
    port_is_free,
    stop_process,
    temporal_dev_server,
)
from workers.settings import Settings

logger = logging.getLogger(__name__)

DEV_KEY_NAME = "dev-admin"


class DevError(RuntimeError):
    """The dev stack cannot start; the message says why and what to do."""


def run_dev(settings: Settings) -> int:
    started = time.monotonic()
    data_dir = settings.data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = _stop_on_signals()
    try:
        with ExitStack() as stack:
            stack.enter_context(_only_instance(data_dir))
            stack.callback(logger.info, "oms dev stopped")
            if not port_is_free(settings.api_port, settings.api_host):
                raise DevError(
                    f"port {settings.api_port} is taken; set OMS_API_PORT to a free one"
                )
            database_url = settings.database_url or stack.enter_context(
                embedded_postgres(data_dir / "postgres")
            )
            codec = _codec_environment(settings, data_dir)
            codec_url = f"http://127.0.0.1:{settings.codec_port}"
            temporal_address = settings.temporal_address or stack.enter_context(
                temporal_dev_server(
                    data_dir / "temporal.db",
                    port=settings.temporal_port,
                    ui_port=settings.temporal_ui_port,
                    namespace=settings.temporal_namespace,
                    log_file=data_dir / "temporal.log",
                    codec_endpoint=codec_url,
                )
            )
            upgrade(database_url)
            asyncio.run(seed_database(database_url))
            admin_key = asyncio.run(_fresh_admin_key(database_url))

            env = {
                **os.environ,
                **codec,
                "OMS_DATABASE_URL": database_url,
                "OMS_TEMPORAL_ADDRESS": temporal_address,
                # On one's own machine, a subscriber is on it too.
                "OMS_WEBHOOK_PRIVATE_NETWORKS": os.environ.get(
                    "OMS_WEBHOOK_PRIVATE_NETWORKS", "true"
                ),
            }
            # The worker gets the time its activities in hand may take.
            drain = settings.worker_shutdown_seconds + 5
            children = {
                name: stack.enter_context(_child(name, env, drain))
                for name in ("worker", "api", "codec-server")
            }
            api_url = f"http://{settings.api_host}:{settings.api_port}"
            _wait_ready(f"{api_url}/readyz", children, stop)
            if stop.is_set():
                return 0
            _announce(
                settings, api_url, database_url, admin_key, time.monotonic() - started
            )
            return _supervise(children, stop)
    except (DevError, EmbeddedError) as error:
        logger.error("%s", error)
        return 1


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if not stop.is_set():
            logger.info("%s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


@contextmanager
def _only_instance(data_dir: Path) -> Iterator[None]:
    with (data_dir / "dev.lock").open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DevError(
                f"another `oms dev` is running on {data_dir}; stop it first or set "
                "OMS_DATA_DIR to another folder"
            ) from None
        yield


@contextmanager
def _child(
    name: str, env: dict[str, str], stop_timeout: float
) -> Iterator["subprocess.Popen[bytes]"]:
    # Own session: Ctrl-C reaches only this supervisor, which stops the
    # children in order instead of all at once.
    process = subprocess.Popen(
        [sys.executable, "-m", "workers", name],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    logger.info("started %s (pid %s)", name, process.pid)
    try:
        yield process
    finally:
        stop_process(process, name, stop_timeout)


def _wait_ready(
    url: str, children: dict[str, "subprocess.Popen[bytes]"], stop: threading.Event
) -> None:
    deadline = time.monotonic() + 90
    while not stop.is_set():
        _check_children(children)
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise DevError(f"the API did not become ready at {url}")
        stop.wait(0.2)


def _check_children(children: dict[str, "subprocess.Popen[bytes]"]) -> None:
    for name, process in children.items():
        if process.poll() is not None:
            raise DevError(f"the {name} exited with code {process.returncode}")


def _supervise(
    children: dict[str, "subprocess.Popen[bytes]"], stop: threading.Event
) -> int:
    while not stop.wait(0.5):
        try:
            _check_children(children)
        except DevError as error:
            logger.error("%s; stopping the stack", error)
            return 1
    return 0


def _codec_environment(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The payload keys for the children: configured ones, else the data dir's."""
    if settings.codec_keys:
        return {}
    key_file = data_dir / "codec-keys.json"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(json.dumps({"dev-1": new_key()}))
        logger.info("made a payload encryption key in %s", key_file)
    keys = json.loads(key_file.read_text())
    return {"OMS_CODEC_KEYS": json.dumps(keys), "OMS_CODEC_KEY_ID": max(keys)}


async def _fresh_admin_key(database_url: str) -> str:
    """A new local admin key for this run; the previous run's is revoked."""
    engine = create_engine(database_url, pool_size=1)
    try:
        await revoke_key(engine, DEV_KEY_NAME)
        return await create_key(
            engine, name=DEV_KEY_NAME, role=Role.ADMIN, channel=None
        )
    finally:
        await engine.dispose()


def _announce(
    settings: Settings,
    api_url: str,
    database_url: str,
    admin_key: str,
    seconds: float,
) -> None:
    ui = (
        f"http://localhost:{settings.temporal_ui_port}/namespaces/"
        f"{settings.temporal_namespace}/workflows"
        if settings.embedded_temporal
        else f"the Temporal UI of {settings.temporal_address}"
    )
    lines = [
        f"OMS is ready ({seconds:.1f}s)",
        f"  API docs     {api_url}/docs",
        f"  Temporal UI  {ui}",
        f"  codec        http://127.0.0.1:{settings.codec_port} (decodes payloads "
        "for the UI)",
        f"  database     {database_url}",
        f"  admin key    {admin_key}",
        f"  data dir     {settings.data_dir.expanduser().resolve()}",
        "Press Ctrl-C to stop.",
    ]
    logger.info("\n%s", "\n".join(lines))
