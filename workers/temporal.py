"""Temporal client for the API and the worker, with the pydantic converter."""

import asyncio
import logging
import time

from temporalio.client import Client
from temporalio.service import RPCError

from workers.codec import data_converter
from workers.settings import Settings

logger = logging.getLogger(__name__)


async def connect(settings: Settings, *, wait_seconds: float = 0) -> Client:
    """Connect to Temporal, retrying for up to `wait_seconds` while it starts."""
    address = settings.temporal_address
    converter = data_converter(settings.codec_secrets, settings.codec_key_id)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(
                address, namespace=settings.temporal_namespace, data_converter=converter
            )
        except (RuntimeError, RPCError) as error:
            if time.monotonic() >= deadline:
                raise
            logger.debug("Temporal at %s not reachable yet: %s", address, error)
            await asyncio.sleep(0.5)
