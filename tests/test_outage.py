"""The database goes away under a running service, and comes back: meanwhile every request
is a 503 problem with Retry-After, /ready says not ready, nothing waits longer than
CALLS_DATABASE_TIMEOUT allows; afterwards the service carries on by itself. PostgreSQL is
reached through a loopback proxy that the test cuts, so the shared server keeps running."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from calls_api.app import create_app
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, make_account, postgres_schema
from tests.tcp_proxy import Outage, TcpProxy, tcp_proxy

TIMEOUT = 1.0
# A request touches the database a few times (key, call); each waits TIMEOUT at most.
SLOWEST_ANSWER = 4 * TIMEOUT + 1


@pytest.fixture
def proxied_url(postgres_server: str) -> Iterator[tuple[str, TcpProxy]]:
    parts = urlsplit(postgres_server)
    with (
        postgres_schema(postgres_server) as url,
        tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy,
    ):
        user = f"{parts.username}@" if parts.username else ""
        if parts.password:
            user = f"{parts.username}:{parts.password}@"
        yield url.replace(parts.netloc, f"{user}127.0.0.1:{proxy.port}", 1), proxy


@pytest.mark.parametrize("outage", ["refuse", "hang"])
def test_postgres_outage_is_503_then_service_resumes_by_itself(
    proxied_url: tuple[str, TcpProxy], outage: Outage
) -> None:
    url, proxy = proxied_url
    account = make_account(url, "outage")
    settings = Settings(
        database_url=url,
        database_timeout=TIMEOUT,
        validate_responses=True,
        engine_poll_seconds=0.1,
    )
    calls = f"/v1/Accounts/{account.account_sid}/Calls"
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        created = client.post(calls, json=SEED_REQUEST, headers=account.headers)
        assert created.status_code == 201
        sid = created.json()["sid"]
        assert client.get("/v1/ready").status_code == 200

        proxy.cut(outage)
        for method, path, body in (
            ("GET", "/v1/ready", None),
            ("GET", f"{calls}/{sid}", None),
            ("POST", calls, SEED_REQUEST),
            ("GET", calls, None),
        ):
            started = time.monotonic()
            answer = client.request(
                method, path, json=body, headers=None if "ready" in path else account.headers
            )
            elapsed = time.monotonic() - started
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["status"] == 503
            assert int(answer.headers["retry-after"]) > 0
            assert elapsed < SLOWEST_ANSWER, f"{method} {path} took {elapsed:.1f} s"
        assert client.get("/v1/health").status_code == 200, "alive, only not ready"

        proxy.restore()
        deadline = time.monotonic() + 15
        while client.get("/v1/ready").status_code != 200:
            assert time.monotonic() < deadline, "the service did not come back by itself"
            time.sleep(0.1)
        fetched = client.get(f"{calls}/{sid}", headers=account.headers)
        assert fetched.status_code == 200
        again = client.post(calls, json=SEED_REQUEST, headers=account.headers)
        assert again.status_code == 201
        listed = client.get(calls, headers=account.headers)
        assert {c["sid"] for c in listed.json()} == {sid, again.json()["sid"]}
        # The engine resumed too: the calls made before and after move on from queued.
        deadline = time.monotonic() + 15
        while any(
            client.get(f"{calls}/{s}", headers=account.headers).json()["status"] == "queued"
            for s in (sid, again.json()["sid"])
        ):
            assert time.monotonic() < deadline, "the engine did not resume"
            time.sleep(0.1)
