"""Who is calling: API keys with a role (and, for integrators, a channel).

Keys are random (256 bits) and stored only as their SHA-256; the key itself
is shown once, when it is created. Every route declares the roles it serves;
an integrator sees its own channel's orders only, and another channel's order
answers 404, so order ids cannot be probed.
"""

import hashlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api.deps import ServicesDep
from api.errors import Problem
from db.access import ApiKey
from models.rules import ACTIONS, Action, Role

KEY_PREFIX = "oms_"

bearer = HTTPBearer(
    auto_error=False, description="an API key, as `Authorization: Bearer oms_...`"
)


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role
    channel: str | None

    @property
    def actor(self) -> str:
        """How the timeline names this caller."""
        return f"{self.name} ({self.role})"

    def sees(self, channel: str) -> bool:
        return self.role != Role.INTEGRATOR or self.channel == channel


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    engine: AsyncEngine, *, name: str, role: Role, channel: str | None
) -> str:
    """Store a new key's hash and return the key: the only time it is seen."""
    if (role == Role.INTEGRATOR) != (channel is not None):
        raise ValueError("an integrator key needs a channel, and only it")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        added = await conn.execute(
            insert(ApiKey)
            .values(
                name=name,
                role=role,
                channel=channel,
                key_hash=hash_key(key),
                prefix=key[: len(KEY_PREFIX) + 6],
            )
            .on_conflict_do_nothing()
            .returning(ApiKey.id)
        )
        if added.first() is None:
            raise ValueError(
                f"a live key named {name!r} exists: revoke it first, or choose "
                "another name"
            )
    return key


async def revoke_key(engine: AsyncEngine, name: str) -> bool:
    """Revoke the named key at once; False if no live key has that name."""
    async with engine.begin() as conn:
        revoked = await conn.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
    return bool(revoked.rowcount)


@dataclass
class RateLimiter:
    """A token bucket per key, in this process: `per_second`, bursts to `burst`."""

    per_second: float
    burst: float
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def wait_needed(self, name: str) -> float:
        """0 if the call may go ahead (and counts it), else seconds to wait."""
        now = time.monotonic()
        tokens, at = self._buckets.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens < 1:
            self._buckets[name] = (tokens, now)
            return (1 - tokens) / self.per_second
        self._buckets[name] = (tokens - 1, now)
        return 0.0


async def authenticate(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthenticated("send an API key: Authorization: Bearer oms_...")
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(ApiKey.name, ApiKey.role, ApiKey.channel).where(
                    ApiKey.key_hash == hash_key(credentials.credentials),
                    ApiKey.revoked_at.is_(None),
                )
            )
        ).first()
    if row is None:
        raise _unauthenticated("the API key is unknown or revoked")
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.wait_needed(row.name)
    if wait:
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"key {row.name} may make {limiter.per_second:g} requests a second",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    return Caller(name=row.name, role=Role(row.role), channel=row.channel)


def _unauthenticated(detail: str) -> Problem:
    return Problem(
        401,
        "unauthenticated",
        "Authentication needed",
        detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def allow(*roles: Role) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if their role is one of `roles`; else 403."""
    allowed = frozenset(roles)

    async def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if caller.role not in allowed:
            raise Problem(
                403,
                "forbidden",
                "Not allowed",
                f"a key of role {caller.role} cannot do this; it needs "
                + " or ".join(sorted(allowed)),
            )
        return caller

    return check


# What each family of routes needs.
AnyCaller = Annotated[Caller, Depends(allow(*Role))]
Reader = Annotated[
    Caller, Depends(allow(Role.INTEGRATOR, Role.SUPPORT, Role.ADMIN, Role.VIEWER))
]
Creator = Annotated[Caller, Depends(allow(Role.INTEGRATOR, Role.ADMIN))]
Admin = Annotated[Caller, Depends(allow(Role.ADMIN))]


def may(action: Action) -> Callable[..., Awaitable[Caller]]:
    """The roles models.rules gives `action`."""
    return allow(*ACTIONS[action].roles)
