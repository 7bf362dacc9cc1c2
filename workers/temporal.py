"""Temporal client for the API and the worker: codec, namespace, TLS, API key."""

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client, Interceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, TLSConfig

from workers.codec import data_converter
from workers.settings import Settings

logger = logging.getLogger(__name__)


class TemporalConfigError(ValueError):
    """The Temporal connection settings contradict each other or name no file."""


def connect_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `Client.connect` from the settings, files read."""
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if (cert is None) != (key is None):
        raise TemporalConfigError(
            "set both OMS_TEMPORAL_TLS_CERT and OMS_TEMPORAL_TLS_KEY, or neither"
        )
    api_key = settings.temporal_api_key
    tls: bool | TLSConfig = False
    if cert or settings.temporal_tls_ca or settings.temporal_tls_server_name:
        tls = TLSConfig(
            client_cert=_read(cert, "OMS_TEMPORAL_TLS_CERT"),
            client_private_key=_read(key, "OMS_TEMPORAL_TLS_KEY"),
            server_root_ca_cert=_read(settings.temporal_tls_ca, "OMS_TEMPORAL_TLS_CA"),
            domain=settings.temporal_tls_server_name or None,
        )
    elif settings.temporal_tls or api_key is not None:
        # TLS with the system's roots: what Temporal Cloud's API keys need.
        tls = True
    return {
        "namespace": settings.temporal_namespace,
        "data_converter": data_converter(settings.codec_secrets, settings.codec_key_id),
        "tls": tls,
        "api_key": None if api_key is None else api_key.get_secret_value(),
    }


def _read(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.expanduser().read_bytes()
    except OSError as error:
        raise TemporalConfigError(
            f"{setting}: cannot read {path}: {error.strerror}"
        ) from error


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime that serves its metrics for Prometheus at `address`."""
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))
    )


async def connect(
    settings: Settings,
    *,
    wait_seconds: float = 0,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Connect to Temporal, retrying for up to `wait_seconds` while it starts.

    Workers made with the client use those of `interceptors` that are also
    worker interceptors (tracing is both).
    """
    address = settings.temporal_address
    options = connect_options(settings)
    if runtime is not None:
        options["runtime"] = runtime
    options["interceptors"] = list(interceptors)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(address, **options)
        except (RuntimeError, RPCError) as error:
            if time.monotonic() >= deadline:
                raise
            logger.debug("Temporal at %s not reachable yet: %s", address, error)
            await asyncio.sleep(0.5)
