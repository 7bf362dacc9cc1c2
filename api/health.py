"""Liveness and readiness probes (no API key needed)."""

import asyncio
import logging
from collections.abc import Awaitable

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ServicesDep
from api.errors import Problem

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_SECONDS = 3.0


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"description": "A dependency is down"}})
async def readyz(services: ServicesDep) -> Health:
    """The database and Temporal both answer."""
    checks = {
        "database": await _check(_ping_database(services)),
        "temporal": await _check(services.temporal.service_client.check_health()),
    }
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        raise Problem(
            503,
            "not-ready",
            "Not ready",
            "; ".join(f"{name}: {checks[name]}" for name in failing),
            headers={"Retry-After": "5"},
        )
    return Health(status="ok", checks=checks)


async def _ping_database(services: ServicesDep) -> None:
    async with services.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # a probe reports any failure, it never raises
        logger.warning("readiness check failed: %s", error)
        return f"unavailable ({type(error).__name__})"
    return "ok"
