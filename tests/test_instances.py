"""Several service processes on one PostgreSQL: any instance serves any call, each engine
step and each event delivery is done by exactly one of them, and when one dies mid-run
(kill -9) the others take its work over once its leases run out. Real servers over TCP,
a real receiver for the webhooks; bounded in calls and time."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from calls_api.engine.lifecycle import FINAL
from tests.conftest import SEED_REQUEST, AccountKey, make_account, postgres_schema, query
from tests.receiver import HANGUP_VERBS, Receiver, running_receiver
from tests.test_serve_smoke import Server, server_factory

__all__ = ["server_factory"]  # the fixture, shared with the smoke tests

LEASE_SECONDS = 2.0
# A request the killed instance wrote just before SIGKILL can still be read by the receiver a
# little later (it sits in the socket's buffer): its first copy counts as sent before the kill
# when it arrives within this much of it, well before a re-send could (half a lease at least).
IN_FLIGHT_GRACE_SECONDS = 0.5
ENV = {
    "CALLS_ALLOW_PRIVATE_WEBHOOKS": "true",
    "CALLS_SIM_TRYING_SECONDS": "0.1",
    "CALLS_SIM_RING_SECONDS": "0.4",
    "CALLS_SIM_TALK_SECONDS": "0.3",
    "CALLS_ENGINE_POLL_SECONDS": "0.1",
    "CALLS_WEBHOOK_RETRY_BASE": "0.1",
    "CALLS_WEBHOOK_RETRY_MAX": "0.5",
    "CALLS_HOOK_TIMEOUT": "1",
    "CALLS_WEBHOOK_TIMEOUT": "1",
    "CALLS_LEASE_SECONDS": str(LEASE_SECONDS),
    "CALLS_LOG_LEVEL": "warning",
}
CLIENTS = 8
CALLS_PER_CLIENT = 8


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    with postgres_schema(postgres_server) as url:
        yield url


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        running.bodies["/answer"] = HANGUP_VERBS
        yield running


def settle(database_url: str, seconds: float = 60) -> None:
    """Wait until every stored call has ended and no event is still to be sent."""
    finals = tuple(FINAL)
    marks = ", ".join("?" for _ in finals)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        open_calls = query(
            database_url,
            f"SELECT COUNT(*) FROM calls WHERE status NOT IN ({marks})",
            finals,
        )[0][0]
        pending = query(database_url, "SELECT COUNT(*) FROM events WHERE state = 'pending'")[0][0]
        if open_calls == 0 and pending == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"not settled in {seconds} s: {open_calls} calls open, {pending} events")


def check_deliveries(
    database_url: str, receiver: Receiver, answered_500: int, killed_at: float | None
) -> int:
    """Every event delivered once and in order per call; returns how many were sent twice
    because the instance sending them died before it could record the answer."""
    events = query(
        database_url,
        "SELECT e.call_sid, e.sequence, e.state, "
        "(SELECT COUNT(*) FROM delivery_attempts AS a WHERE a.event_id = e.event_id "
        " AND a.http_status BETWEEN 200 AND 299) FROM events AS e",
    )
    assert events, "the calls sent events"
    assert {state for _, _, state, _ in events} == {"delivered"}
    assert all(successes == 1 for *_, successes in events), "one 2xx attempt recorded each"
    expected: dict[str, set[int]] = defaultdict(set)
    for call_sid, sequence, _, _ in events:
        expected[call_sid].add(sequence)

    posted = receiver.received("/events")
    received: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for request in posted:
        payload = request.json()
        received[payload["call_sid"]].append((payload["sequence"], request.at))
    assert set(received) == set(expected)
    ok_copies: dict[tuple[str, int], list[float]] = defaultdict(list)
    for request in posted[answered_500:]:  # the first ones were answered 500 and retried
        payload = request.json()
        ok_copies[(payload["call_sid"], payload["sequence"])].append(request.at)
    for call_sid, arrivals in received.items():
        sequences = [sequence for sequence, _ in arrivals]
        assert sequences == sorted(sequences), f"{call_sid}: events out of order {sequences}"
        assert set(sequences) == expected[call_sid]
    twice = 0
    for (call_sid, sequence), times in ok_copies.items():
        if len(times) > 1:
            # Only an event in flight at the killed instance may arrive again, once, after
            # its lease ran out; no event is sent twice by live instances.
            assert killed_at is not None, f"{call_sid} #{sequence} delivered {len(times)} times"
            assert len(times) == 2, (call_sid, sequence, times)
            assert times[0] < killed_at + IN_FLIGHT_GRACE_SECONDS < times[1], (call_sid, sequence)
            assert times[1] - killed_at >= LEASE_SECONDS * 0.5, "re-sent before the lease ended"
            twice += 1
    return twice


def test_two_instances_share_the_work_and_one_dying_loses_nothing(
    tmp_path: Path,
    server_factory: type[Server],
    postgres_url: str,
    receiver: Receiver,
) -> None:
    account = make_account(postgres_url, "load")
    receiver.statuses["/events"] = [500, 503, 500]
    first = server_factory(postgres_url, tmp_path / "first.log", env=ENV)
    second = server_factory(postgres_url, tmp_path / "second.log", env=ENV)
    body = {
        **SEED_REQUEST,
        "answer_url": receiver.url("/answer"),
        "event_url": receiver.url("/events"),
    }
    acknowledged: dict[str, int] = {}  # call_sid -> the port that answered 201
    unexpected: list[str] = []
    lock = threading.Lock()

    def one_client(number: int) -> None:
        with httpx.Client(timeout=10, headers=account.headers) as http:
            for index in range(CALLS_PER_CLIENT):
                server = (first, second)[(number + index) % 2]
                other = (second, first)[(number + index) % 2]
                try:
                    created = http.post(
                        f"{server.base}/Accounts/{account.account_sid}/Calls", json=body
                    )
                except httpx.TransportError:
                    continue  # the killed instance: no answer, so nothing acknowledged
                if created.status_code != 201:
                    with lock:
                        unexpected.append(f"create {created.status_code} {created.text}")
                    continue
                sid = created.json()["sid"]
                with lock:
                    acknowledged[sid] = server.port
                if index % 3 == 0:  # hang some up through the other instance
                    try:
                        hung = http.put(
                            f"{other.base}/Accounts/{account.account_sid}/Calls/{sid}",
                            json={"call_status": "completed"},
                        )
                    except httpx.TransportError:
                        continue
                    if hung.status_code not in (200, 409):
                        with lock:
                            unexpected.append(f"update {hung.status_code} {hung.text}")

    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < CLIENTS * CALLS_PER_CLIENT * 0.4 and time.monotonic() < deadline:
        time.sleep(0.01)
    second.process.kill()  # SIGKILL mid-run: its claims and in-flight sends are cut off
    killed_at = time.monotonic()
    second.process.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=60)

    assert unexpected == []
    served_by = {port for port in acknowledged.values()}
    assert served_by == {first.port, second.port}, "both instances served creates"
    settle(postgres_url)

    stored = [row[0] for row in query(postgres_url, "SELECT call_sid FROM calls")]
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored), "every acknowledged call exists"
    with httpx.Client(timeout=10, headers=account.headers) as http:
        for sid in acknowledged:
            fetched = http.get(f"{first.base}/Accounts/{account.account_sid}/Calls/{sid}")
            assert fetched.status_code == 200
            assert fetched.json()["status"] in FINAL
    resent = check_deliveries(postgres_url, receiver, 3, killed_at)
    assert resent <= 50, "at most what one instance had in flight"


def worker_pids(server: Server) -> list[int]:
    """The server's worker processes (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    workers = []
    for pid in children.read_text().split():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in command:
            workers.append(int(pid))
    return workers


def test_serve_workers_runs_that_many_processes_that_share_the_engine_work(
    tmp_path: Path,
    server_factory: type[Server],
    postgres_url: str,
    receiver: Receiver,
) -> None:
    account: AccountKey = make_account(postgres_url, "workers")
    server = server_factory(
        postgres_url, tmp_path / "workers.log", args=["--workers", "3"], env=ENV
    )
    deadline = time.monotonic() + 20
    while len(worker_pids(server)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(worker_pids(server)) == 3, server.output()
    body: dict[str, Any] = {
        **SEED_REQUEST,
        "answer_url": receiver.url("/answer"),
        "event_url": receiver.url("/events"),
    }
    created = []
    for _ in range(12):  # a new connection each time: the workers share the listening socket
        answer = httpx.post(
            f"{server.base}/Accounts/{account.account_sid}/Calls",
            json=body,
            headers=account.headers,
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
        created.append(answer.json()["sid"])
    settle(postgres_url)
    # Three engines polled the same calls: each event still went out exactly once.
    assert check_deliveries(postgres_url, receiver, 0, None) == 0
    assert len(receiver.received("/events")) == 4 * len(created)
    assert len(receiver.received("/answer")) == len(created)
