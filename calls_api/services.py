"""The long-lived parts of a running service, started once and shared by every request."""

from __future__ import annotations

import asyncio

import httpx

from calls_api.engine import CallEngine
from calls_api.engine.simulated import SimulatedEngine
from calls_api.ratelimit import RateLimiter
from calls_api.settings import Settings
from calls_api.store import Store, open_store


class Services:
    """Settings, the store, the HTTP client for webhooks, the call engine, the rate limiter.

    Started at lifespan start-up, or by the first request when there was none.
    """

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(
            settings.database_url,
            timeout=settings.database_timeout,
            pool_size=settings.database_pool_size,
        )
        self.rate_limiter = RateLimiter.from_settings(settings)
        self._build_engine()
        self.started = False
        self._lock = asyncio.Lock()

    def _build_engine(self) -> None:
        self.http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        self.engine: CallEngine = SimulatedEngine(self.store, self.settings, self.http)

    async def start(self) -> None:
        """Open the store (applying migrations), then start the engine. Safe to repeat."""
        if self.started:
            return
        async with self._lock:
            if not self.started:
                if self.http.is_closed:
                    self._build_engine()
                await self.store.open()
                await self.engine.start()
                self.started = True

    async def stop(self) -> None:
        """Stop the engine, close the store, the HTTP client and the rate limiter's counters."""
        async with self._lock:
            if self.started:
                await self.engine.stop()
                await self.http.aclose()
                await self.rate_limiter.close()
                await self.store.close()
                self.started = False
