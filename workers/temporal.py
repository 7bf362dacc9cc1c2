"""Temporal client for the API and the worker, with the pydantic converter."""

import asyncio
import logging
import time

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

logger = logging.getLogger(__name__)


async def connect(address: str, namespace: str, *, wait_seconds: float = 0) -> Client:
    """Connect to Temporal, retrying for up to `wait_seconds` while it starts."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await Client.connect(
                address, namespace=namespace, data_converter=pydantic_data_converter
            )
        except (RuntimeError, RPCError) as error:
            if time.monotonic() >= deadline:
                raise
            logger.debug("Temporal at %s not reachable yet: %s", address, error)
            await asyncio.sleep(0.5)
