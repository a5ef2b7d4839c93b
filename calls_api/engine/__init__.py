"""The call engine: moves calls through their statuses and delivers their status events.

`CallEngine` is the interface the handlers use; `SimulatedEngine` is the one implementation
today (no telephone network is reachable here). An engine that places real calls fits the
same interface.
"""

from __future__ import annotations

from typing import Protocol

from calls_api.store.records import CallRecord, HookAuth


class CallEngine(Protocol):
    """What the API asks of an engine."""

    async def start(self) -> None:
        """Begin working through due steps and deliveries in the background."""

    async def stop(self) -> None:
        """Stop background work; anything unfinished stays due in the database."""

    def prepare(self, call: CallRecord) -> CallRecord:
        """A new call, with its first step scheduled, ready to be stored."""

    def wake(self) -> None:
        """New work may be due now."""

    async def hang_up(self, call: CallRecord, status: str) -> CallRecord:
        """End the call now (`completed`, or `no-answer` before answer); Conflict if it ended."""

    async def redirect(
        self, call: CallRecord, url: str, method: str, auth: HookAuth | None
    ) -> CallRecord:
        """Fetch new instructions for an answered call now; Conflict if it is not answered."""
