"""`calls-api serve` as users run it: a real uvicorn on 127.0.0.1, the seed request over TCP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from tests.conftest import SEED_REQUEST, stable

CLI = shutil.which("calls-api", path=str(Path(sys.executable).parent)) or "calls-api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`calls-api serve` in a process of its own, on a SQLite file or a database URL."""

    def __init__(
        self,
        database: Path | str,
        log: Path,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        url = database if isinstance(database, str) else f"sqlite:///{database}"
        full_env = {**os.environ, **(env or {}), "CALLS_DATABASE_URL": url}
        self.process = subprocess.Popen(
            [CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port), *args],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the server did not come up within 20 s:\n" + self.output())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[Server]]:
    started: list[Server] = []

    class Tracked(Server):
        def __init__(
            self,
            database: Path | str,
            log: Path,
            *,
            args: Sequence[str] = (),
            env: Mapping[str, str] | None = None,
        ) -> None:
            super().__init__(database, log, args=args, env=env)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop()


def test_serve_bootstraps_an_account_and_answers_the_seed_request(
    tmp_path: Path, server_factory: type[Server]
) -> None:
    database = tmp_path / "var" / "calls.db"
    server = server_factory(database, tmp_path / "first.log")
    banner = server.output()
    account_sid = re.search(r"account_sid:\s+(AC[0-9a-f]{32})", banner)
    api_key = re.search(r"api_key:\s+(ck_\S+)", banner)
    assert account_sid and api_key, banner
    assert "curl -s -X POST" in banner and f"{server.base}/Accounts/" in banner
    headers = {"Authorization": f"Bearer {api_key.group(1)}"}

    created = httpx.post(
        f"{server.base}/Accounts/{account_sid.group(1)}/Calls",
        json=SEED_REQUEST,
        headers=headers,
        timeout=5,
    )
    assert created.status_code == 201, created.text
    call = created.json()
    assert {k: call[k] for k in ("account_sid", "from", "to", "status")} == {
        "account_sid": account_sid.group(1),
        "from": "+15550000000",
        "to": "+15550000001",
        "status": "queued",
    }
    location = created.headers["location"]
    fetched = httpx.get(f"http://127.0.0.1:{server.port}{location}", headers=headers, timeout=5)
    assert fetched.status_code == 200
    assert stable(fetched.json()) == stable(call)
    server.stop()

    # Restarted on the same database: no new account, and the call is still there.
    again = server_factory(database, tmp_path / "second.log")
    assert "account_sid:" not in again.output()
    fetched = httpx.get(f"http://127.0.0.1:{again.port}{location}", headers=headers, timeout=5)
    assert fetched.status_code == 200
    assert stable(fetched.json()) == stable(call)
    # After the one-time banner, the logs name the route and the account, never the key.
    logs = server.output().split("Serving the Calls API", 1)[1]
    assert "POST /v1/Accounts/{account_sid}/Calls 201" in logs
    assert f"account={account_sid.group(1)}" in logs
    assert api_key.group(1).split(".")[1] not in logs


def test_kill_9_mid_call_then_restart_loses_no_event(
    tmp_path: Path,
    server_factory: type[Server],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:
    from tests.receiver import HANGUP_VERBS, running_receiver

    monkeypatch.setenv("CALLS_ALLOW_PRIVATE_WEBHOOKS", "true")
    monkeypatch.setenv("CALLS_SIM_TRYING_SECONDS", "0.1")
    monkeypatch.setenv("CALLS_SIM_RING_SECONDS", "1.5")
    monkeypatch.setenv("CALLS_SIM_TALK_SECONDS", "0.5")
    monkeypatch.setenv("CALLS_ENGINE_POLL_SECONDS", "0.1")
    monkeypatch.setenv("CALLS_LEASE_SECONDS", "6")
    database = database_url
    with running_receiver() as receiver:
        receiver.bodies["/answer"] = HANGUP_VERBS
        server = server_factory(database, tmp_path / "first.log")
        banner = server.output()
        account_sid = banner.split("account_sid:", 1)[1].split()[0]
        headers = {"Authorization": f"Bearer {banner.split('api_key:', 1)[1].split()[0]}"}
        body = {
            **SEED_REQUEST,
            "answer_url": receiver.url("/answer"),
            "event_url": receiver.url("/events"),
        }
        created = httpx.post(
            f"{server.base}/Accounts/{account_sid}/Calls", json=body, headers=headers, timeout=5
        )
        assert created.status_code == 201
        receiver.wait_for("/events", 2)  # trying and ringing are out; the call now rings
        server.process.kill()  # SIGKILL: no shutdown, no flush
        server.process.wait(timeout=10)

        again = server_factory(database, tmp_path / "second.log")
        # At least once: the event on the wire at the kill is sent again once the dead
        # process's lease runs out, so wait for four distinct events, not four requests.
        deadline = time.monotonic() + 30
        while True:
            statuses: list[str] = []
            sequences: list[int] = []
            for event in receiver.received("/events"):
                payload = event.json()
                sequences.append(payload["sequence"])
                if payload["sequence"] > len(statuses):
                    statuses.append(payload["call_status"])
            if len(statuses) == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert statuses == ["trying", "ringing", "in-progress", "completed"]
        assert sequences == sorted(sequences), "in order, a repeat included"
        final = httpx.get(
            f"{again.base}/Accounts/{account_sid}/Calls/{created.json()['sid']}",
            headers=headers,
            timeout=5,
        )
        assert final.json()["status"] == "completed"


def test_kill_9_under_create_load_loses_no_acknowledged_call(
    tmp_path: Path, server_factory: type[Server], database_url: str
) -> None:
    from tests.conftest import make_account

    account = make_account(database_url, "load")
    env = {"CALLS_LEASE_SECONDS": "6", "CALLS_LOG_LEVEL": "warning"}
    server = server_factory(database_url, tmp_path / "first.log", env=env)
    path = f"/Accounts/{account.account_sid}/Calls"
    acknowledged: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=5, headers=account.headers) as http:
            for _ in range(200):  # bounded: the kill comes long before
                if stop.is_set():
                    return
                try:
                    created = http.post(f"{server.base}{path}", json=SEED_REQUEST)
                except httpx.TransportError:
                    return  # the server is gone: this create was never acknowledged
                with lock:
                    if created.status_code == 201:
                        acknowledged.append(created.json()["sid"])
                    else:
                        refused.append(f"{created.status_code} {created.text}")

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.process.kill()  # SIGKILL while creates are in flight
    server.process.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    assert refused == []
    assert len(acknowledged) >= 40, server.output()

    again = server_factory(database_url, tmp_path / "second.log", env=env)
    with httpx.Client(timeout=5, headers=account.headers) as http:
        for sid in acknowledged:
            fetched = http.get(f"{again.base}{path}/{sid}")
            assert fetched.status_code == 200, (sid, fetched.text)
            assert fetched.json()["sid"] == sid
