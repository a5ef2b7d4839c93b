"""The simulated engine against a real store and a real local receiver: statuses, answer
hooks, status events (signed, in order), retries, and carrying on after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from calls_api import signing
from calls_api.admin import create_account
from calls_api.engine.lifecycle import FINAL
from calls_api.engine.simulator import script_for
from calls_api.services import Services
from calls_api.settings import Settings
from calls_api.store import StoreUnavailable
from calls_api.store.records import CallRecord, EventRecord
from tests.receiver import HANGUP_VERBS, Receiver, running_receiver

pytestmark = pytest.mark.anyio
T = TypeVar("T")

FAST: dict[str, Any] = {
    "sim_trying_seconds": 0.02,
    "sim_ring_seconds": 0.05,
    "sim_talk_seconds": 0.1,
    "engine_poll_seconds": 0.05,
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    "allow_private_webhooks": True,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        running.bodies["/answer"] = HANGUP_VERBS
        yield running


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {**FAST, **overrides}
    return Settings(database_url=database_url, **values)


def new_call(
    account_sid: str, receiver: Receiver, to: str = "+15550000001", **changes: object
) -> CallRecord:
    now = datetime.now(UTC)
    call = CallRecord(
        call_sid="CA" + format(abs(hash((to, now))), "032x")[-32:],
        account_sid=account_sid,
        from_="+15550000000",
        to=to,
        status="queued",
        direction="outbound",
        answer_url=receiver.url("/answer"),
        event_url=receiver.url("/events"),
        event_method="POST",
        timeout=60,
        time_limit=None,
        tag=None,
        headers=None,
        date_created=now,
        date_updated=now,
    )
    return replace(call, **changes)  # type: ignore[arg-type]


async def place(services: Services, call: CallRecord) -> CallRecord:
    prepared = services.engine.prepare(call)
    await services.store.create_call(prepared)
    services.engine.wake()
    return prepared


async def eventually(check: Callable[[], Awaitable[T | None]], seconds: float = 10) -> T:
    """Poll `check` until it returns something, for at most `seconds`."""
    async with asyncio.timeout(seconds):
        while True:
            result = await check()
            if result is not None:
                return result
            await asyncio.sleep(0.02)


async def final_status(services: Services, call: CallRecord, seconds: float = 10) -> CallRecord:
    async def ended() -> CallRecord | None:
        stored = await services.store.get_call(call.account_sid, call.call_sid)
        return stored if stored is not None and stored.status in FINAL else None

    return await eventually(ended, seconds)


async def delivered(services: Services, call: CallRecord, count: int) -> list[EventRecord]:
    async def settled() -> list[EventRecord] | None:
        events = await services.store.list_events(call.account_sid, call.call_sid)
        done = len(events) >= count and all(e.state != "pending" for e in events)
        return events if done else None

    return await eventually(settled)


@pytest.mark.parametrize(
    ("to", "statuses", "sip"),
    [
        ("+15550000001", ["trying", "ringing", "in-progress", "completed"], 200),
        ("+15550000486", ["trying", "ringing", "busy"], 486),
        ("+15550000487", ["trying", "ringing", "no-answer"], 487),
        ("+15550000503", ["trying", "failed"], 503),
        ("sip:early@example.com", ["trying", "early-media", "in-progress", "completed"], 200),
    ],
)
async def test_each_destination_runs_its_script_and_reports_every_status(
    database_url: str, receiver: Receiver, to: str, statuses: list[str], sip: int
) -> None:
    services = Services(settings_for(database_url))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver, to, timeout=1))
        ended = await final_status(services, call)
        events = await delivered(services, call, len(statuses))
    finally:
        await services.stop()
    assert ended.status == statuses[-1]
    assert ended.sip_status == sip
    assert ended.end_time is not None
    assert [e.call_status for e in events] == statuses
    assert [e.sequence for e in events] == list(range(1, len(statuses) + 1))
    assert all(e.state == "delivered" for e in events)
    posted = receiver.received("/events")
    assert [r.json()["call_status"] for r in posted] == statuses
    for request in posted:
        assert signing.verify(
            account.webhook_secret, request.body, request.headers["jambonz-signature"]
        )
    if ended.status == "completed":
        assert ended.start_time is not None
        assert ended.duration == int((ended.end_time - ended.start_time).total_seconds())
        assert posted[-1].json()["duration"] == ended.duration
        answer = receiver.received("/answer")
        assert len(answer) == 1
        assert answer[0].json()["call_sid"] == call.call_sid
    else:
        assert ended.start_time is None
        assert ended.duration is None


def test_scripts_match_the_documented_table() -> None:
    assert script_for("+15550000486").outcome == "busy"
    assert script_for("sip:busy@example.com").outcome == "busy"
    assert script_for("sips:noanswer@example.com").outcome == "no-answer"
    assert script_for("sip:+15550000503@example.com").outcome == "fail"
    assert script_for("+15550000001").outcome == "answer"


async def test_events_are_retried_until_delivered_and_stay_in_order(
    database_url: str, receiver: Receiver
) -> None:
    receiver.statuses["/events"] = [500, 503, 200, 404]  # first event fails twice
    services = Services(settings_for(database_url))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver))
        await final_status(services, call)
        events = await delivered(services, call, 4)
    finally:
        await services.stop()
    assert [e.state for e in events] == ["delivered"] * 4
    first, second = events[0], events[1]
    assert [a.http_status for a in first.history] == [500, 503, 200]
    assert first.attempts == 3
    assert [a.http_status for a in second.history] == [404, 200]
    assert all(a.latency_ms >= 0 for e in events for a in e.history)
    sequences = [r.json()["sequence"] for r in receiver.received("/events")]
    assert sequences == [1, 1, 1, 2, 2, 3, 4], "an event waits until the one before it is done"


async def test_an_event_gives_up_after_the_configured_attempts(
    database_url: str, receiver: Receiver
) -> None:
    receiver.statuses["/events"] = [500] * 50
    services = Services(settings_for(database_url, webhook_max_attempts=2))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver, "+15550000503"))
        await final_status(services, call)
        events = await delivered(services, call, 2)
    finally:
        await services.stop()
    assert [(e.call_status, e.state, e.attempts) for e in events] == [
        ("trying", "failed", 2),
        ("failed", "failed", 2),
    ]


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ({"status": 500}, 500, "answer_url answered HTTP 500"),
        ({"body": {"verb": "say"}}, 200, "must answer a JSON array"),
        ({"body": [{"text": "no verb"}]}, 200, "must answer a JSON array"),
        ({"delay": 1.0}, 200, "answer_url timed out"),
    ],
)
async def test_unusable_instructions_fail_the_call_with_the_reason(
    database_url: str, receiver: Receiver, answer: dict[str, Any], status: int, reason: str
) -> None:
    receiver.statuses["/answer"] = [answer.get("status", 200)]
    receiver.bodies["/answer"] = answer.get("body", HANGUP_VERBS)
    if "delay" in answer:
        receiver.delays["/answer"] = answer["delay"]
    services = Services(settings_for(database_url, hook_timeout=0.3))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver))
        ended = await final_status(services, call)
    finally:
        await services.stop()
    assert ended.status == "failed"
    assert ended.failure_reason is not None
    assert reason in ended.failure_reason
    assert ended.start_time is not None, "the call was answered before its hook failed"


async def test_time_limit_ends_a_call_that_has_no_hangup(
    database_url: str, receiver: Receiver
) -> None:
    receiver.bodies["/answer"] = [{"verb": "pause", "length": 30}]
    services = Services(settings_for(database_url, sim_talk_seconds=30))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver, time_limit=1))
        ended = await final_status(services, call)
    finally:
        await services.stop()
    assert ended.status == "completed"
    assert ended.duration == 1


async def test_work_survives_a_restart(database_url: str, receiver: Receiver) -> None:
    settings = settings_for(database_url, sim_ring_seconds=0.5)
    first = Services(settings)
    await first.start()
    account, _ = await create_account(first.store, "a")
    call = await place(first, new_call(account.account_sid, receiver))

    async def ringing() -> CallRecord | None:
        stored = await first.store.get_call(account.account_sid, call.call_sid)
        return stored if stored is not None and stored.status == "ringing" else None

    await eventually(ringing)
    await first.stop()  # the process goes away while the call rings

    second = Services(settings)
    await second.start()
    try:
        ended = await final_status(second, call)
        events = await delivered(second, call, 4)
    finally:
        await second.stop()
    assert ended.status == "completed"
    assert [e.call_status for e in events] == ["trying", "ringing", "in-progress", "completed"]
    assert all(e.state == "delivered" for e in events)


async def test_hang_up_retries_when_the_engine_moved_the_call_meanwhile(
    database_url: str, receiver: Receiver
) -> None:
    services = Services(settings_for(database_url, sim_ring_seconds=30))
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver))

        # `call` is the queued version the API read; the engine dials it before the hang-up.
        async def moved_on() -> CallRecord | None:
            stored = await services.store.get_call(account.account_sid, call.call_sid)
            return stored if stored is not None and stored.status == "ringing" else None

        await eventually(moved_on)
        ended = await services.engine.hang_up(call, "completed")
    finally:
        await services.stop()
    assert ended.status == "canceled"
    assert ended.event_count == 3  # trying, ringing, canceled


async def test_a_step_that_keeps_failing_ends_the_call_instead_of_looping(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = Services(settings_for(database_url))

    async def broken(call: CallRecord, now: datetime) -> None:
        raise RuntimeError("a bug in a step")

    monkeypatch.setitem(services.engine._steps, "ring", broken)  # type: ignore[attr-defined]
    await services.start()
    try:
        account, _ = await create_account(services.store, "a")
        call = await place(services, new_call(account.account_sid, receiver))
        ended = await final_status(services, call)
    finally:
        await services.stop()
    assert ended.status == "failed"
    assert ended.failure_reason == "the engine could not process this call"


async def test_the_engine_waits_out_a_database_that_cannot_be_written(
    database_url: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Due work that cannot be claimed is looked at once per poll interval, not in a tight
    loop, and is picked up again when the database can be written."""
    services = Services(settings_for(database_url, engine_poll_seconds=0.1))
    await services.start()
    tries = 0
    claim = services.store.claim_due_calls

    async def unwritable(*args: Any, **kwargs: Any) -> list[CallRecord]:
        nonlocal tries
        tries += 1
        raise StoreUnavailable("the database is not usable: attempt to write a readonly database")

    try:
        account, _ = await create_account(services.store, "a")
        monkeypatch.setattr(services.store, "claim_due_calls", unwritable)
        call = await place(services, new_call(account.account_sid, receiver))
        await asyncio.sleep(0.55)
        # About one try per 0.1 s poll (a wake-up adds one); a busy loop makes thousands.
        assert 1 <= tries <= 10
        monkeypatch.setattr(services.store, "claim_due_calls", claim)
        ended = await final_status(services, call)
    finally:
        await services.stop()
    assert ended.status == "completed"
