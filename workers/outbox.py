"""Delivers the outbox to webhook subscribers, in the worker processes that
serve the notifications queue.

Each pass claims due deliveries with `FOR UPDATE SKIP LOCKED`, so any number
of processes share the work, and takes only the oldest pending event of each
order for each subscriber, so a subscriber receives one order's events in
the order they happened. A claim is a lease: a process that dies while
sending leaves the delivery to be tried again once the lease ends.

A 2xx answer acknowledges an event: it is never sent again unless someone
replays it. Anything else, or no answer in time, counts as a failure of the
subscriber: nothing more is sent to it until its back-off ends (doubling
with each failure in a row, up to `OMS_WEBHOOK_RETRY_MAX_SECONDS`), and the
event is given up after `OMS_WEBHOOK_MAX_ATTEMPTS` attempts. Orders never
wait for any of this: events are only rows until a dispatcher sends them.
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from models.signatures import sign
from workers.codec import CodecError, open_text
from workers.settings import Settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "OMS-Signature"
# How long a claimed delivery is left alone before another process may retry
# it: longer than any attempt can take.
LEASE_MARGIN_SECONDS = 30
_BATCH = 50
_PRUNE_EVERY_SECONDS = 600

_CLAIM = text(
    """
    WITH due AS (
        SELECT c.id, c.event_id, cs.failures
        FROM outbound_deliveries c
        JOIN webhook_subscriptions cs ON cs.id = c.subscription_id
        WHERE c.status = 'pending' AND c.next_attempt_at <= now()
          AND cs.active AND (cs.retry_at IS NULL OR cs.retry_at <= now())
          AND NOT EXISTS (
              SELECT 1 FROM outbound_deliveries p
              WHERE p.subscription_id = c.subscription_id
                AND p.order_id = c.order_id
                AND p.status = 'pending'
                AND p.event_id < c.event_id)
    ), probes AS (
        -- A subscriber that has been failing gets one event at a time until
        -- it answers again.
        SELECT DISTINCT ON (c.subscription_id) c.id
        FROM outbound_deliveries c JOIN due ON due.id = c.id
        WHERE due.failures > 0
        ORDER BY c.subscription_id, c.event_id
    )
    UPDATE outbound_deliveries d
    SET next_attempt_at = now() + make_interval(secs => :lease),
        attempts = d.attempts + 1,
        last_attempt_at = now()
    FROM webhook_subscriptions s, outbox_events e
    WHERE d.id IN (
        SELECT x.id FROM outbound_deliveries x
        WHERE x.id IN (SELECT id FROM due WHERE failures = 0
                       UNION ALL SELECT id FROM probes)
          -- Checked again on the row it locks: another process's claim that
          -- committed meanwhile has moved next_attempt_at on, and is skipped.
          AND x.status = 'pending' AND x.next_attempt_at <= now()
        ORDER BY x.event_id
        LIMIT :batch
        FOR UPDATE SKIP LOCKED)
      AND s.id = d.subscription_id AND e.id = d.event_id
    RETURNING d.id, d.attempts, d.subscription_id, s.url, s.secret,
              e.event_id, e.type, e.payload
    """
)

_DELIVERED = text(
    """
    WITH done AS (
        UPDATE outbound_deliveries
        SET status = 'delivered', delivered_at = now(), last_status_code = :code,
            last_error = NULL
        -- Only the attempt that holds the claim: a late answer to an attempt
        -- whose lease ran out, or that a replay superseded, changes nothing.
        WHERE id = :id AND status = 'pending' AND attempts = :attempt
        RETURNING subscription_id
    )
    UPDATE webhook_subscriptions SET failures = 0, retry_at = NULL
    WHERE id IN (SELECT subscription_id FROM done) AND failures > 0
    """
)

_FAILED = text(
    """
    WITH mine AS (
        SELECT id FROM outbound_deliveries
        WHERE id = :id AND status = 'pending' AND attempts = :attempt
        FOR UPDATE
    ), sub AS (
        UPDATE webhook_subscriptions
        -- Failures of one pass count once: the first sets the pause, the
        -- others wait it out with it.
        SET failures = CASE WHEN retry_at IS NULL OR retry_at <= now()
                            THEN failures + 1 ELSE failures END,
            retry_at = CASE WHEN retry_at IS NULL OR retry_at <= now()
                            THEN now() + make_interval(secs => least(
                                :retry_max, :retry * power(2, least(failures, 30))))
                            ELSE retry_at END,
            last_error = :error
        WHERE id = :subscription_id AND EXISTS (SELECT 1 FROM mine)
        RETURNING retry_at
    )
    UPDATE outbound_deliveries
    SET status = CASE WHEN attempts >= :max_attempts THEN 'failed' ELSE 'pending' END,
        next_attempt_at = coalesce((SELECT retry_at FROM sub), now()),
        last_status_code = :code,
        last_error = :error
    WHERE id IN (SELECT id FROM mine)
    """
)

_PRUNE = text(
    """
    DELETE FROM outbox_events e
    WHERE e.created_at < now() - make_interval(secs => :days * 86400)
      AND NOT EXISTS (
          SELECT 1 FROM outbound_deliveries d
          WHERE d.event_id = e.id AND d.status = 'pending')
    """
)


class PrivateAddress(Exception):
    """A subscriber's host is, or resolves to, an address of our own network."""


def public_only(addresses: list[str]) -> None:
    """Refuse loopback, private, link-local and other non-global addresses."""
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise PrivateAddress(
                f"{address} is not a public address (OMS_WEBHOOK_PRIVATE_NETWORKS)"
            )


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` stands for (itself if it is one)."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        found = await asyncio.get_running_loop().getaddrinfo(host, port)
        return [str(info[4][0]) for info in found]


@dataclass(frozen=True)
class _Claimed:
    id: int
    attempt: int
    subscription_id: str
    url: str
    secret: str
    event_id: str
    type: str
    payload: dict[str, Any]


class WebhookDispatcher:
    """Sends due deliveries until stopped; `deliver_due` is one pass."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._client = client
        self._pruned_at = 0.0

    async def run(self) -> None:
        """Deliver forever (until cancelled); a broken pass is logged and
        the next one comes after the usual pause. Cancelled in the middle of
        a pass, it lets the deliveries in flight finish and be recorded, so
        that an answer already received is not lost and sent again."""
        timeout = httpx.Timeout(self._settings.webhook_timeout_seconds)
        async with httpx.AsyncClient(timeout=timeout) as client:
            self._client = self._client or client
            logger.info("webhook dispatcher started")
            while True:
                current = asyncio.ensure_future(self._pass())
                try:
                    sent = await asyncio.shield(current)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            current,
                            self._settings.webhook_timeout_seconds
                            + LEASE_MARGIN_SECONDS / 2,
                        )
                    logger.info("webhook dispatcher stopped")
                    raise
                if sent < _BATCH:
                    await asyncio.sleep(self._settings.webhook_poll_seconds)

    async def _pass(self) -> int:
        try:
            sent = await self.deliver_due()
            await self._prune()
        except Exception:
            logger.exception("webhook dispatch pass failed; trying again")
            return 0
        return sent

    async def deliver_due(self) -> int:
        """Claim and send what is due now; returns how many were attempted."""
        settings = self._settings
        lease = settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"lease": lease, "batch": _BATCH})).all()
        claimed = [
            _Claimed(
                id=row.id,
                attempt=row.attempts,
                subscription_id=str(row.subscription_id),
                url=row.url,
                secret=row.secret,
                event_id=str(row.event_id),
                type=row.type,
                payload=row.payload,
            )
            for row in rows
        ]
        await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _deliver(self, item: _Claimed) -> None:
        assert self._client is not None, "run() or a client gives the dispatcher one"
        body = json.dumps(item.payload, separators=(",", ":"), sort_keys=True).encode()
        code: int | None = None
        error: str | None
        try:
            secret = open_text(
                self._settings.codec_secrets, item.secret, item.subscription_id
            )
            headers = {
                "Content-Type": "application/json",
                "OMS-Event-Id": item.event_id,
                "OMS-Event-Type": item.type,
                "OMS-Delivery-Id": str(item.id),
                "OMS-Delivery-Attempt": str(item.attempt),
                SIGNATURE_HEADER: sign(secret, int(time.time()), body),
                "User-Agent": "oms-webhooks/1",
            }
            # The whole attempt, however slowly the subscriber answers, ends
            # well within its lease; the answer's body is never read.
            async with asyncio.timeout(self._settings.webhook_timeout_seconds):
                if not self._settings.webhook_private_networks:
                    target = httpx.URL(item.url)
                    public_only(await resolve(target.host, target.port or 443))
                async with self._client.stream(
                    "POST", item.url, content=body, headers=headers
                ) as response:
                    code = response.status_code
            error = None if 200 <= code < 300 else f"HTTP {code}"
        except CodecError as failure:
            # Its key was removed from OMS_CODEC_KEYS: nothing can be signed.
            error = f"the subscription's secret: {failure}"
        except PrivateAddress as refused:
            error = str(refused)
        except TimeoutError:
            error = f"no answer within {self._settings.webhook_timeout_seconds:g} s"
        except Exception as failure:  # noqa: BLE001 - any failure is the attempt's
            error = f"{type(failure).__name__}: {failure}"[:500]
        async with self._engine.begin() as conn:
            if error is None:
                await conn.execute(
                    _DELIVERED, {"id": item.id, "attempt": item.attempt, "code": code}
                )
                logger.info(
                    "webhook %s of order event %s delivered to %s",
                    item.type,
                    item.event_id,
                    item.url,
                )
                return
            settings = self._settings
            await conn.execute(
                _FAILED,
                {
                    "id": item.id,
                    "attempt": item.attempt,
                    "subscription_id": item.subscription_id,
                    "code": code,
                    "error": error,
                    "retry": settings.webhook_retry_seconds,
                    "retry_max": settings.webhook_retry_max_seconds,
                    "max_attempts": settings.webhook_max_attempts,
                },
            )
        logger.warning(
            "webhook %s (event %s, attempt %s) to %s failed: %s",
            item.type,
            item.event_id,
            item.attempt,
            item.url,
            error,
        )

    async def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < _PRUNE_EVERY_SECONDS:
            return
        self._pruned_at = now
        deleted = await self.prune_old_events()
        if deleted:
            logger.info("outbox: %s old events deleted", deleted)

    async def prune_old_events(self) -> int:
        """Delete events older than `OMS_OUTBOX_RETENTION_DAYS` that nobody
        waits for any more (with their delivery log); returns how many."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                _PRUNE, {"days": self._settings.outbox_retention_days}
            )
        return int(result.rowcount)
