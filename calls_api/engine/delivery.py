"""Delivers status events from the outbox: signed, in order per call, retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta

import httpx

from calls_api.egress import ForbiddenDestination, check_destination
from calls_api.engine.hooks import auth_of, signed_request
from calls_api.settings import Settings
from calls_api.store import Store
from calls_api.store.records import DeliveryAttempt, EventRecord

log = logging.getLogger("calls_api.engine")


def retry_delay(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, times 0.5-1.0."""
    ceiling = min(settings.webhook_retry_max, settings.webhook_retry_base * 2 ** (attempts - 1))
    return float(ceiling * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not a secret


class Deliverer:
    """Sends due events; each call's events go one at a time, in sequence."""

    def __init__(
        self, store: Store, settings: Settings, client: httpx.AsyncClient, owner: str
    ) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self.owner = owner

    async def deliver_due(self, now: datetime, lease_until: datetime, in_flight: set[int]) -> int:
        """Claim the due events and send those not already being sent; returns how many."""
        claimed = await self.store.claim_due_events(self.owner, now, lease_until, 50)
        events = [e for e in claimed if e.event_id not in in_flight]
        if not events:
            return 0
        secrets: dict[str, str] = {}
        for account_sid in {event.account_sid for event in events}:
            account = await self.store.get_account(account_sid)
            secrets[account_sid] = account.webhook_secret if account else ""
        in_flight.update(event.event_id for event in events)
        try:
            await asyncio.gather(
                *(self.deliver(event, secrets[event.account_sid]) for event in events)
            )
        finally:
            in_flight.difference_update(event.event_id for event in events)
        return len(events)

    async def deliver(self, event: EventRecord, secret: str) -> None:
        """One attempt at one event, recorded whatever happens."""
        started = time.perf_counter()
        attempted_at = datetime.now(UTC)
        status, error = await self._send(event, secret)
        attempt = DeliveryAttempt(
            attempted_at=attempted_at,
            http_status=status,
            error=error,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        attempts = event.attempts + 1
        if status is not None and 200 <= status < 300:
            state, next_at = "delivered", None
        elif attempts >= self.settings.webhook_max_attempts:
            state, next_at = "failed", None
        else:
            delay = retry_delay(self.settings, attempts)
            state, next_at = "pending", attempted_at + timedelta(seconds=delay)
        if not await self.store.record_attempt(event, attempt, state, next_at, self.owner):
            # Our lease ran out and another instance took the event over: its attempt counts.
            log.warning("event %s: lease lost before the attempt was recorded", event.event_id)

    async def _send(self, event: EventRecord, secret: str) -> tuple[int | None, str | None]:
        assert event.url is not None
        try:
            await check_destination(
                event.url, allow_private=self.settings.allow_private_webhooks, background=True
            )
        except ForbiddenDestination as exc:
            return None, f"refused: {exc}"
        if not secret:
            return None, "the account has no webhook secret"
        request = signed_request(
            self.client,
            event.method,
            event.url,
            event.payload,
            secret,
            timeout=self.settings.webhook_timeout,
        )
        try:
            response = await self.client.send(request, auth=auth_of(event.auth))
            await response.aclose()
        except httpx.TimeoutException:
            return None, f"timed out after {self.settings.webhook_timeout:g} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        return response.status_code, None
