"""The simulated engine: durable steps in the database, a scripted far end, real webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from calls_api.engine.delivery import Deliverer
from calls_api.engine.hooks import HookFailure, ends_with_hangup, fetch_instructions
from calls_api.engine.lifecycle import (
    answered,
    change_status,
    is_final,
    reschedule,
    seconds,
    status_event,
)
from calls_api.engine.simulator import script_for
from calls_api.problems import Conflict
from calls_api.settings import Settings
from calls_api.store import Store, StoreUnavailable
from calls_api.store.records import CallRecord, HookAuth

log = logging.getLogger("calls_api.engine")


class SimulatedEngine:
    """Drives calls with the simulated carrier; all progress is read from and written to the
    store, so a restart continues where the last process stopped."""

    def __init__(self, store: Store, settings: Settings, client: httpx.AsyncClient) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        # Who this instance is in the claims it takes on calls and events.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.deliverer = Deliverer(store, settings, client, self.owner)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._calls_in_flight: set[str] = set()
        # A tick the database failed may have left claims of ours behind.
        self._stranded_claims = False
        self._events_in_flight: set[int] = set()
        self._steps: dict[str, Callable[[CallRecord, datetime], Awaitable[None]]] = {
            "dial": self._dial,
            "ring": self._ring,
            "answer": self._answer,
            "instructions": self._instructions,
            "busy": self._end("busy"),
            "no-answer": self._end("no-answer"),
            "fail": self._end("failed"),
            "hangup": self._end("completed"),
            "time-limit": self._end("completed"),
        }

    # -- the interface --

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="calls-engine")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            # What this instance had claimed goes to the others (or the next start) at once,
            # not when its leases run out. The database may be away: then they run out.
            try:
                await self.store.release_claims(self.owner)
            except StoreUnavailable as exc:
                log.warning("could not release this instance's claims: %s", exc)

    def prepare(self, call: CallRecord) -> CallRecord:
        return reschedule(call, "dial", call.date_created, call.date_created)

    def wake(self) -> None:
        self._wake.set()

    async def hang_up(self, call: CallRecord, status: str) -> CallRecord:
        # The engine may move the call on between our read and our write; then read it
        # again and decide anew (it may have ended meanwhile, which is a 409 after all).
        for _ in range(5):
            if is_final(call.status):
                raise Conflict(f"The call has already ended ({call.status})")
            now = datetime.now(UTC)
            if answered(call):
                if status != "completed":
                    raise Conflict(
                        f"The call was answered; only 'completed' ends it, not {status!r}"
                    )
                final = "completed"
            else:
                final = "no-answer" if status == "no-answer" else "canceled"
            saved = await self._save(call, change_status(call, final, now), now)
            if saved is not call:
                return saved
            latest = await self.store.get_call(call.account_sid, call.call_sid)
            if latest is None:
                raise Conflict("The call was deleted while this request was handled")
            call = latest
        raise Conflict("The call kept changing while this request was handled; try again")

    async def redirect(
        self, call: CallRecord, url: str, method: str, auth: HookAuth | None
    ) -> CallRecord:
        if call.status != "in-progress":
            raise Conflict(f"Only an answered call can be redirected; this one is {call.status}")
        self._calls_in_flight.add(call.call_sid)  # the loop leaves it alone meanwhile
        try:
            hooked = replace(call, answer_url=url, answer_method=method, answer_auth=auth)
            return await self._follow_instructions(call, hooked, required=True)
        finally:
            self._calls_in_flight.discard(call.call_sid)

    # -- the loop --

    async def _run(self) -> None:
        paused = False
        while True:
            try:
                busy = await self._tick()
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:  # the step stays due
                if not paused:  # once per outage, not once per poll
                    log.warning("engine paused, the database is unavailable: %s", exc)
                paused = True
                self._stranded_claims = True
                busy = False
            except Exception:  # keep going: one bad step must not stop every call
                log.exception("engine step failed; retrying shortly")
                busy = False
            else:
                if paused:
                    log.warning("engine resumed: the database is available again")
                paused = False
            if busy:
                continue
            await self._sleep(poll_only=paused)

    async def _sleep(self, *, poll_only: bool = False) -> None:
        """Until the next due work or the poll interval; only the interval while paused, as
        work that is due but cannot be written would otherwise be retried without a pause."""
        wait = self.settings.engine_poll_seconds
        try:
            due = None if poll_only else await self.store.next_due_time()
        except Exception:  # the database may be down; look again after the poll interval
            due = None
        if due is not None:
            wait = max(0.0, min(wait, (due - datetime.now(UTC)).total_seconds()))
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that
        # arrives as it times out, and stop() would then wait for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()
        self._wake.clear()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.lease_seconds)

    async def _tick(self) -> bool:
        if self._stranded_claims:
            # Nothing of ours runs between ticks: claims still held are ones a failed tick
            # could not finish. Give them back now rather than wait for their leases.
            await self.store.release_claims(self.owner)
            self._stranded_claims = False
        now = datetime.now(UTC)
        # Claimed: no other instance takes these steps until we write or the lease ends.
        claimed = await self.store.claim_due_calls(self.owner, now, self.lease_until(now), 50)
        calls = [c for c in claimed if c.call_sid not in self._calls_in_flight]
        if calls:
            self._calls_in_flight.update(c.call_sid for c in calls)
            try:
                await asyncio.gather(*(self._step(call, now) for call in calls))
            finally:
                self._calls_in_flight.difference_update(c.call_sid for c in calls)
        sent = await self.deliverer.deliver_due(now, self.lease_until(now), self._events_in_flight)
        return bool(calls) or bool(sent)

    async def _step(self, call: CallRecord, now: datetime) -> None:
        step = self._steps.get(call.next_step or "")
        if step is None:
            log.error("call %s has an unknown next step %r", call.call_sid, call.next_step)
            await self._save(call, reschedule(call, None, None, now), now)
            return
        try:
            await step(call, now)
        except StoreUnavailable:
            raise  # the database is away: the step stays due and is tried again
        except Exception:
            # A step that fails the same way every time must not be retried for ever: the
            # call ends failed, with a reason, and the traceback goes to the log.
            log.exception("call %s: step %r failed", call.call_sid, call.next_step)
            ended = change_status(
                call, "failed", now, failure_reason="the engine could not process this call"
            )
            await self._save(call, ended, now)

    async def _save(
        self,
        old: CallRecord,
        new: CallRecord,
        now: datetime,
        *,
        required: bool = False,
        hold: bool = False,
    ) -> CallRecord:
        """Store the change (with its status event when the status moved); `hold` keeps this
        instance's claim on the call, when it goes on with the next step itself."""
        event = None
        if new.status != old.status:
            event = status_event(new, now, now)
        if await self.store.update_call(old, new, event, hold=hold):
            new = replace(new, version=old.version + 1)
            if event is not None:
                self.wake()
            return new
        if required:
            raise Conflict("The call changed while this request was handled; try again")
        return old

    # -- the steps --

    async def _dial(self, call: CallRecord, now: datetime) -> None:
        script = script_for(call.to)
        step = "fail" if script.outcome == "fail" else "ring"
        at = now + seconds(self.settings.sim_trying_seconds)
        await self._save(
            call, change_status(call, "trying", now, next_step=step, next_step_at=at), now
        )

    async def _ring(self, call: CallRecord, now: datetime) -> None:
        script = script_for(call.to)
        ring = self.settings.sim_ring_seconds
        if script.outcome == "busy":
            step, after = "busy", ring
        elif script.outcome == "no-answer" or ring >= call.timeout:
            step, after = "no-answer", float(call.timeout)
        else:
            step, after = "answer", ring
        status = "early-media" if script.outcome == "early-media" else "ringing"
        at = now + seconds(after)
        await self._save(
            call, change_status(call, status, now, next_step=step, next_step_at=at), now
        )

    async def _answer(self, call: CallRecord, now: datetime) -> None:
        answered_call = change_status(
            call, "in-progress", now, next_step="instructions", next_step_at=now
        )
        saved = await self._save(call, answered_call, now, hold=True)
        if saved is not call:
            await self._follow_instructions(saved, saved)

    async def _instructions(self, call: CallRecord, now: datetime) -> None:
        await self._follow_instructions(call, call)

    async def _follow_instructions(
        self, stored: CallRecord, call: CallRecord, *, required: bool = False
    ) -> CallRecord:
        """Fetch the call hook of `call` and schedule the end it asks for; `stored` is the
        version in the database. Unusable instructions end the call `failed`."""
        account = await self.store.get_account(call.account_sid)
        secret = account.webhook_secret if account else ""
        try:
            verbs = await fetch_instructions(
                self.client,
                self.settings,
                secret,
                call,
                call.answer_url,
                call.answer_method,
                call.answer_auth,
            )
        except HookFailure as exc:
            now = datetime.now(UTC)
            failed = change_status(call, "failed", now, failure_reason=str(exc))
            return await self._save(stored, failed, now, required=required)
        now = datetime.now(UTC)
        assert call.start_time is not None
        ends = []
        if ends_with_hangup(verbs):
            ends.append((call.start_time + seconds(self.settings.sim_talk_seconds), "hangup"))
        if call.time_limit is not None:
            ends.append((call.start_time + seconds(call.time_limit), "time-limit"))
        at, step = min(ends) if ends else (None, None)
        return await self._save(stored, reschedule(call, step, at, now), now, required=required)

    def _end(self, status: str) -> Callable[[CallRecord, datetime], Awaitable[None]]:
        async def end(call: CallRecord, now: datetime) -> None:
            await self._save(call, change_status(call, status, now), now)

        return end
