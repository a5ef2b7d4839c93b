"""Faults around the service, each bounded in time, on loopback only.

- The webhook receiver is down, or hangs: creating calls stays fast, the events wait in the
  outbox with every failed attempt on record, and all of them arrive, in order, once the
  receiver is back.
- The database file cannot be written (disk full, read-only): a 503 problem with
  Retry-After, nothing half-written, every stored call intact, and service as before once
  the condition clears.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from calls_api.app import create_app
from calls_api.services import Services
from calls_api.settings import Settings
from calls_api.store.sqlite import SQLiteStore
from tests.conftest import SEED_REQUEST, AccountKey, count_calls, make_account
from tests.receiver import HANGUP_VERBS, Receiver, free_port, running_receiver

# Quick calls and quick retries, so that a whole outage and recovery takes seconds.
FAST: dict[str, Any] = {
    "sim_trying_seconds": 0.02,
    "sim_ring_seconds": 0.05,
    "sim_talk_seconds": 0.1,
    "engine_poll_seconds": 0.05,
    "webhook_timeout": 0.3,
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.3,
    "webhook_max_attempts": 100,
    "allow_private_webhooks": True,
}
# How long one create may take while a receiver misbehaves: generous, not a benchmark.
CREATE_BOUND_SECONDS = 1.0
CALLS = 3
EVENTS_PER_CALL = 4  # trying, ringing, in-progress, completed


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    """These faults are the embedded file's own (page limit, query_only): SQLite only."""
    return tmp_path / "calls.db"


@pytest.fixture
def fast_settings(database_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{database_path}", validate_responses=True, **FAST)


@pytest.fixture
def me(fast_settings: Settings) -> AccountKey:
    return make_account(fast_settings.database_url, "me")


@pytest.fixture
def hooks() -> Iterator[Receiver]:
    """answer_url, always up: only the status webhooks misbehave."""
    with running_receiver() as running:
        running.bodies["/answer"] = HANGUP_VERBS
        yield running


@pytest.fixture
def services(fast_settings: Settings) -> Services:
    return Services(fast_settings)


@pytest.fixture
def api(fast_settings: Settings, services: Services) -> Iterator[TestClient]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(fast_settings, services)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def calls_url(account: AccountKey) -> str:
    return f"/v1/Accounts/{account.account_sid}/Calls"


def wait_until(check: Callable[[], Any], seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds}s")


def create_calls_quickly(api: TestClient, me: AccountKey, body: dict[str, Any]) -> list[str]:
    sids = []
    for _ in range(CALLS):
        started = time.monotonic()
        response = api.post(calls_url(me), json=body, headers=me.headers)
        took = time.monotonic() - started
        assert response.status_code == 201, response.text
        assert took < CREATE_BOUND_SECONDS, f"create took {took:.2f}s while the receiver failed"
        sids.append(response.json()["call_sid"])
    return sids


def events_of(api: TestClient, me: AccountKey, sid: str) -> list[dict[str, Any]]:
    response = api.get(f"{calls_url(me)}/{sid}/Events", headers=me.headers)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def completed(api: TestClient, me: AccountKey, sid: str) -> bool:
    response = api.get(f"{calls_url(me)}/{sid}", headers=me.headers)
    return bool(response.json()["status"] == "completed")


def retried(api: TestClient, me: AccountKey, sid: str) -> list[dict[str, Any]] | None:
    """The call's events once its first one has failed at least twice."""
    events = events_of(api, me, sid)
    return events if events and len(events[0]["attempts"]) >= 2 else None


def all_delivered(api: TestClient, me: AccountKey, sid: str) -> list[dict[str, Any]] | None:
    events = events_of(api, me, sid)
    done = len(events) == EVENTS_PER_CALL and all(e["state"] == "delivered" for e in events)
    return events if done else None


def assert_all_delivered_in_order(
    api: TestClient, me: AccountKey, sids: list[str], receiver: Receiver
) -> None:
    """Every event delivered, and the receiver saw each call's events in sequence: a retry
    repeats its event, but no event ever overtakes the one before it."""
    for sid in sids:
        events = wait_until(partial(all_delivered, api, me, sid))
        assert [e["sequence"] for e in events] == list(range(1, EVENTS_PER_CALL + 1))
        seen = [
            r.json()["sequence"]
            for r in receiver.received("/events")
            if r.json()["call_sid"] == sid
        ]
        assert seen == sorted(seen), f"{sid}: events overtook each other: {seen}"
        assert sorted(set(seen)) == list(range(1, EVENTS_PER_CALL + 1)), seen
        statuses = [
            r.json()["call_status"]
            for r in receiver.received("/events")
            if r.json()["call_sid"] == sid
        ]
        assert statuses[-1] == "completed"


def test_a_receiver_that_is_down_gets_every_event_when_it_returns(
    api: TestClient, me: AccountKey, hooks: Receiver
) -> None:
    port = free_port()  # nobody listens: every delivery is refused
    body = {
        **SEED_REQUEST,
        "answer_url": hooks.url("/answer"),
        "event_url": f"http://127.0.0.1:{port}/events",
    }
    sids = create_calls_quickly(api, me, body)
    # The calls go on; their events wait in the outbox, each failed attempt on record.
    for sid in sids:
        wait_until(partial(completed, api, me, sid))
        first = wait_until(partial(retried, api, me, sid))
        assert all(e["state"] == "pending" for e in first)
        assert all(a["http_status"] is None and a["error"] for a in first[0]["attempts"])
        assert all(e["attempts"] == [] for e in first[1:]), "a later event waits for the first"
    with running_receiver(port) as receiver:
        assert_all_delivered_in_order(api, me, sids, receiver)


def test_a_receiver_that_hangs_does_not_slow_the_api(
    api: TestClient, me: AccountKey, hooks: Receiver
) -> None:
    with running_receiver() as receiver:
        receiver.delays["/events"] = 2.0  # far past CALLS_WEBHOOK_TIMEOUT (0.3 s)
        body = {
            **SEED_REQUEST,
            "answer_url": hooks.url("/answer"),
            "event_url": receiver.url("/events"),
        }
        sids = create_calls_quickly(api, me, body)
        for sid in sids:
            first = wait_until(partial(retried, api, me, sid))
            assert first[0]["state"] == "pending"
            assert all("timed out" in (a["error"] or "") for a in first[0]["attempts"])
        # Reads stay fast as well while deliveries hang.
        started = time.monotonic()
        assert api.get(calls_url(me), headers=me.headers).status_code == 200
        assert time.monotonic() - started < CREATE_BOUND_SECONDS
        del receiver.delays["/events"]  # it recovers
        assert_all_delivered_in_order(api, me, sids, receiver)


# -- the database file cannot be written ----------------------------------------------------


def connection_of(services: Services) -> sqlite3.Connection:
    """The service's own connection: the conditions below are set on it, as SQLite would
    report a full disk or a read-only file to it."""
    store = services.store
    assert isinstance(store, SQLiteStore)
    return store.db


def integrity(database_path: Path) -> str:
    with sqlite3.connect(database_path) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    problem = response.json()
    assert problem["status"] == 503
    assert "sqlite" not in response.text.lower() and "disk" not in response.text.lower()


def test_a_full_disk_is_a_503_and_loses_nothing(
    api: TestClient,
    me: AccountKey,
    services: Services,
    database_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = connection_of(services)
    # SQLite's page limit, at the pages the file has now: the next page it needs is refused
    # with SQLITE_FULL, exactly as when the disk has no room left.
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    accepted: list[dict[str, Any]] = []
    refused = None
    tag = {"pad": "x" * 2000}  # fills pages fast
    for _ in range(200):
        response = api.post(calls_url(me), json={**SEED_REQUEST, "tag": tag}, headers=me.headers)
        if response.status_code != 201:
            refused = response
            break
        accepted.append(response.json())
    assert refused is not None, "the page limit was never reached"
    assert_unavailable(refused)
    # The operator's log names the cause; the client is told only to come back later.
    assert any("database or disk is full" in r.getMessage() for r in caplog.records)
    # Everything acknowledged is there and readable, nothing half-written, the file sound.
    assert count_calls(f"sqlite:///{database_path}") == len(accepted)
    for call in accepted:
        got = api.get(f"{calls_url(me)}/{call['call_sid']}", headers=me.headers)
        assert got.status_code == 200
        assert got.json()["tag"] == tag
    assert integrity(database_path) == "ok"
    # Room again: the service carries on without a restart.
    db.execute("PRAGMA max_page_count = 1073741823")
    again = api.post(calls_url(me), json=SEED_REQUEST, headers=me.headers)
    assert again.status_code == 201, again.text
    assert count_calls(f"sqlite:///{database_path}") == len(accepted) + 1
    assert integrity(database_path) == "ok"


def test_a_read_only_database_is_a_503_and_keeps_what_it_has(
    api: TestClient, me: AccountKey, services: Services, database_path: Path
) -> None:
    created = api.post(calls_url(me), json=SEED_REQUEST, headers=me.headers)
    assert created.status_code == 201
    sid = created.json()["call_sid"]
    db = connection_of(services)
    # Writes now fail with SQLITE_READONLY, as on a read-only file or file system (the tests
    # run as root, whom file modes do not stop).
    db.execute("PRAGMA query_only = ON")
    before = count_calls(f"sqlite:///{database_path}")
    for method, url, body in (
        ("POST", calls_url(me), SEED_REQUEST),
        ("PUT", f"{calls_url(me)}/{sid}", {"status": "completed"}),
        ("DELETE", f"{calls_url(me)}/{sid}", None),
    ):
        assert_unavailable(api.request(method, url, json=body, headers=me.headers))
    # Reads still work, and nothing changed.
    assert api.get(f"{calls_url(me)}/{sid}", headers=me.headers).status_code == 200
    assert count_calls(f"sqlite:///{database_path}") == before
    assert integrity(database_path) == "ok"
    db.execute("PRAGMA query_only = OFF")
    assert api.post(calls_url(me), json=SEED_REQUEST, headers=me.headers).status_code == 201
    assert api.delete(f"{calls_url(me)}/{sid}", headers=me.headers).status_code == 204
