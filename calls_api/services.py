"""The long-lived parts of a running service, started once and shared by every request."""

from __future__ import annotations

import asyncio

from calls_api.settings import Settings
from calls_api.store import Store, open_store


class Services:
    """Settings and the store; started on the first request or at lifespan start-up."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.database_url, timeout=settings.database_timeout)
        self.started = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the store (applying migrations). Safe to call more than once."""
        if self.started:
            return
        async with self._lock:
            if not self.started:
                await self.store.open()
                self.started = True

    async def stop(self) -> None:
        """Close the store."""
        async with self._lock:
            if self.started:
                await self.store.close()
                self.started = False
