"""Every answer of every operation, errors included, carries the security headers, and no
problem document ever shows a traceback, an exception name or a path on the server."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from calls_api.codegen.ir import build_api
from calls_api.codegen.spec_source import load_spec
from calls_api.services import Services
from calls_api.settings import Settings
from generated import adapters
from tests.conftest import AccountKey, serving
from tests.test_authorization import RINGING, SECURED, TABLE, Row

ROOT = Path(__file__).resolve().parent.parent
API = build_api(load_spec(ROOT / "spec/openapi.yaml"))
PROBES = {"getHealth": Row("GET", ""), "getReady": Row("GET", "")}
UNKNOWN_CALL = "CA" + "0" * 32
# What would give the server's insides away.
INTERNALS = ("Traceback", 'File "', ".py", "site-packages", "Error(", "Exception", "sqlite")


def url_of(operation_id: str, account_sid: str, call_sid: str) -> str:
    if operation_id in PROBES:
        return adapters.ROUTES[operation_id][1]
    return TABLE[operation_id].url(account_sid, call_sid)


def assert_guarded(response: Any, *where: str) -> None:
    """The security headers; for a problem, nothing about the server's insides."""
    label = f"{response.request.method} {response.request.url.path} {response.status_code}"
    assert response.headers["x-content-type-options"] == "nosniff", label
    assert response.headers["cache-control"] == "no-store", label
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", label
        problem = response.json()
        assert set(problem) == {"type", "title", "status", "detail", "instance"}, label
        for marker in (*INTERNALS, *where):
            assert marker not in response.text, f"{label}: {marker!r} in {response.text}"


# conftest's account, other_account and client, named for what they are here.
@pytest.fixture
def owner(account: AccountKey) -> AccountKey:
    return account


@pytest.fixture
def intruder(other_account: AccountKey) -> AccountKey:
    return other_account


@pytest.fixture
def api(client: TestClient) -> TestClient:
    return client


def place_call(api: TestClient, owner: AccountKey) -> str:
    created = api.post(
        f"/v1/Accounts/{owner.account_sid}/Calls", json=RINGING, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    return str(created.json()["call_sid"])


def test_the_sweep_covers_every_operation() -> None:
    assert set(PROBES) | set(SECURED) == {op.operation_id for op in API.operations}


def test_every_operation_and_error_carries_the_headers(
    api: TestClient, owner: AccountKey, intruder: AccountKey, tmp_path: Path
) -> None:
    answers = []
    for operation_id in [*PROBES, *SECURED]:
        method, _template = adapters.ROUTES[operation_id]
        row = TABLE.get(operation_id, PROBES.get(operation_id))
        assert row is not None
        call_sid = place_call(api, owner)

        def send(
            url: str,
            *,
            key: AccountKey | None = owner,
            method: str = method,
            row: Row = row,
            **kwargs: Any,
        ) -> Any:
            headers = {**(key.headers if key else {}), **kwargs.pop("headers", {})}
            if "content" not in kwargs and row.body is not None:
                kwargs["json"] = row.body
            return api.request(method, url, headers=headers, **kwargs)

        url = url_of(operation_id, owner.account_sid, call_sid)
        answers += [
            send(url),  # as it should be
            send(url + "?bogus=1"),  # 400: an undeclared query parameter
            send(url, method="PATCH"),  # 405
        ]
        if operation_id in SECURED:
            answers += [
                send(url, key=None),  # 401
                send(url_of(operation_id, owner.account_sid, call_sid), key=intruder),  # 403
                send(url_of(operation_id, owner.account_sid, UNKNOWN_CALL)),  # 404 or more
            ]
        if row.body is not None:
            answers += [
                send(url, content=b"x" * 70_000, headers={"Content-Type": "application/json"}),
                send(url, content=b"{", headers={"Content-Type": "application/json"}),
                send(url, content=b"hi", headers={"Content-Type": "text/plain"}),
                send(url, content=b'"\xff"', headers={"Content-Type": "application/json"}),
            ]
    statuses = {a.status_code for a in answers}
    assert statuses >= {200, 201, 204, 400, 401, 403, 404, 405, 413, 415}, statuses
    for answer in answers:
        assert_guarded(answer, str(tmp_path), str(ROOT))


def test_429_and_503_carry_the_headers_and_no_internals(
    settings: Settings, owner: AccountKey, tmp_path: Path
) -> None:
    limited = settings.model_copy(update={"rate_limit_per_key": 1})
    services = Services(limited)
    with serving(limited, services) as client:
        call_sid = place_call(client, owner)  # the key's one request

        def every_secured_operation() -> list[Any]:
            return [
                client.request(
                    TABLE[op].method,
                    TABLE[op].url(owner.account_sid, call_sid),
                    json=TABLE[op].body,
                    headers=owner.headers,
                )
                for op in SECURED
            ]

        limited_answers = every_secured_operation()
        assert client.portal is not None
        client.portal.call(services.store.close)  # the database goes away under the app
        down_answers = [*every_secured_operation(), client.get("/v1/ready")]
    assert {a.status_code for a in limited_answers} == {429}
    assert {a.status_code for a in down_answers} == {503}
    for answer in limited_answers + down_answers:
        assert_guarded(answer, str(tmp_path), str(ROOT))
        assert int(answer.headers["retry-after"]) >= 1


@pytest.mark.parametrize("operation", API.operations, ids=lambda op: op.operation_id)
def test_a_handler_that_raises_is_a_generic_500(
    settings: Settings,
    owner: AccountKey,
    operation: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    """A bug in any handler: the client gets a plain 500 problem; only the log has the cause."""
    module = importlib.import_module(f"handlers.{operation.module}")
    secret_path = str(tmp_path / "internal" / "handler.py")

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"internal state broken, see {secret_path}")

    with serving(settings) as client:
        call_sid = place_call(client, owner)
        monkeypatch.setattr(module, operation.name, broken)
        caplog.set_level(logging.ERROR, logger="calls_api")
        row = TABLE.get(operation.operation_id, PROBES.get(operation.operation_id))
        assert row is not None
        response = client.request(
            row.method,
            url_of(operation.operation_id, owner.account_sid, call_sid),
            json=row.body,
            headers=owner.headers,
        )
    assert response.status_code == 500, response.text
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "The server could not complete the request.",
        "instance": response.request.url.path,
    }
    assert_guarded(response, secret_path, "RuntimeError", "internal state")
    logged = [r for r in caplog.records if r.name == "calls_api.errors"]
    assert logged and logged[0].exc_info is not None, "the cause is logged for the operator"
    assert "internal state broken" in str(logged[0].exc_info[1])
