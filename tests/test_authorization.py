"""Authorization of every operation (OWASP API1, broken object level authorization).

A table says how to call each secured operation of the spec on one call; a new operation
without a row fails `test_every_secured_operation_has_a_row`. For every row: another
account's key never reads, changes, lists or deletes the call, a revoked key stops working
on the very next request, no key is a 401, and no key ever shows in a log line or an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from calls_api.admin import revoke_key
from calls_api.codegen.ir import build_api
from calls_api.codegen.spec_source import load_spec
from calls_api.settings import Settings
from generated import adapters
from tests.conftest import (
    SEED_REQUEST,
    AccountKey,
    make_account,
    make_key,
    serving,
    with_store,
)

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = {
    op.operation_id: op for op in build_api(load_spec(ROOT / "spec/openapi.yaml")).operations
}
SECURED = sorted(op_id for op_id, op in OPERATIONS.items() if op.secured)

# A call that rings until its 60 s timeout: while the test runs, nothing but a hang-up or a
# delete can end it, so an ended or missing call means someone else's request got through.
RINGING = {**SEED_REQUEST, "to": "+15550000487", "timeout": 60}
HANG_UP = {"status": "completed"}


@dataclass(frozen=True)
class Row:
    """How to call an operation: the method, the path after /v1/Accounts/{account_sid},
    a JSON body, and whether it names one call (`{call_sid}` in the path)."""

    method: str
    path: str
    body: dict[str, Any] | None = None

    @property
    def names_a_call(self) -> bool:
        return "{call_sid}" in self.path

    def url(self, account_sid: str, call_sid: str) -> str:
        return f"/v1/Accounts/{account_sid}" + self.path.replace("{call_sid}", call_sid)


TABLE: dict[str, Row] = {
    "createCall": Row("POST", "/Calls", RINGING),
    "listCalls": Row("GET", "/Calls"),
    "getCall": Row("GET", "/Calls/{call_sid}"),
    "updateCall": Row("PUT", "/Calls/{call_sid}", HANG_UP),
    "updateCallLegacy": Row("POST", "/Calls/{call_sid}", HANG_UP),
    "deleteCall": Row("DELETE", "/Calls/{call_sid}"),
    "listCallEvents": Row("GET", "/Calls/{call_sid}/Events"),
}


def test_every_secured_operation_has_a_row() -> None:
    """A new operation in the spec fails here until it is added to the table (and so to
    every test below)."""
    assert SECURED, "the spec declares secured operations"
    assert sorted(TABLE) == SECURED
    for operation_id, row in TABLE.items():
        assert adapters.ROUTES[operation_id] == (
            row.method,
            "/v1/Accounts/{account_sid}" + row.path,
        )


def test_unsecured_operations_are_only_the_probes() -> None:
    assert {op_id for op_id, op in OPERATIONS.items() if not op.secured} == {
        "getHealth",
        "getReady",
    }


@dataclass
class World:
    client: TestClient
    settings: Settings
    owner: AccountKey
    intruder: AccountKey
    call_sid: str

    def request(self, row: Row, key: AccountKey | None, account_sid: str, call_sid: str) -> Any:
        headers = key.headers if key else {}
        return self.client.request(
            row.method, row.url(account_sid, call_sid), json=row.body, headers=headers
        )

    def owners_view(self) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/Accounts/{self.owner.account_sid}/Calls/{self.call_sid}",
            headers=self.owner.headers,
        )
        assert response.status_code == 200, f"the owner lost the call: {response.text}"
        call: dict[str, Any] = response.json()
        return call


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    owner = make_account(settings.database_url, "owner")
    intruder = make_account(settings.database_url, "intruder")
    with serving(settings) as client:
        created = client.post(
            f"/v1/Accounts/{owner.account_sid}/Calls", json=RINGING, headers=owner.headers
        )
        assert created.status_code == 201, created.text
        yield World(client, settings, owner, intruder, created.json()["call_sid"])


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


def assert_untouched(world: World) -> None:
    call = world.owners_view()
    assert call["status"] not in {"completed", "canceled"}, call
    listed = world.client.get(
        f"/v1/Accounts/{world.owner.account_sid}/Calls", headers=world.owner.headers
    ).json()
    assert [c["call_sid"] for c in listed] == [world.call_sid]


@pytest.mark.parametrize("operation_id", SECURED)
def test_another_accounts_key_never_reaches_the_call(world: World, operation_id: str) -> None:
    row = TABLE[operation_id]
    # On the owner's path: the key may not act for that account at all.
    assert_problem(world.request(row, world.intruder, world.owner.account_sid, world.call_sid), 403)
    assert_untouched(world)
    # On its own path, naming the owner's call: not found, exactly like a call that is not there.
    own = world.request(row, world.intruder, world.intruder.account_sid, world.call_sid)
    if row.names_a_call:
        assert_problem(own, 404)
        missing = world.request(row, world.intruder, world.intruder.account_sid, "CA" + "0" * 32)
        assert_problem(missing, 404)
        assert own.json()["detail"].replace(world.call_sid, "X") == missing.json()[
            "detail"
        ].replace("CA" + "0" * 32, "X")
    elif row.method == "GET":
        assert own.status_code == 200
        assert world.call_sid not in own.text, "another account's call was listed"
    else:
        assert own.status_code == 201
        assert own.json()["account_sid"] == world.intruder.account_sid
    assert_untouched(world)


def _revoke(settings: Settings, key: AccountKey) -> None:
    assert with_store(settings.database_url, lambda store: revoke_key(store, key.prefix))


@pytest.mark.parametrize("operation_id", SECURED)
def test_a_revoked_key_stops_working_at_once(world: World, operation_id: str) -> None:
    row = TABLE[operation_id]
    second = make_key(world.settings.database_url, world.owner)
    # The key works, for a read of the same call...
    assert world.request(TABLE["getCall"], second, second.account_sid, world.call_sid).is_success
    _revoke(world.settings, second)  # ...as the CLI would, from another process's connection
    refused = world.request(row, second, second.account_sid, world.call_sid)
    assert_problem(refused, 401)
    assert refused.headers["www-authenticate"] == "Bearer"
    assert_untouched(world)
    # The account's other key is not affected.
    assert world.request(
        TABLE["getCall"], world.owner, world.owner.account_sid, world.call_sid
    ).is_success


@pytest.mark.parametrize("operation_id", SECURED)
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
        "Bearer ck_000000000000." + "A" * 43,
    ],
)
def test_no_valid_key_is_a_401(world: World, operation_id: str, authorization: str | None) -> None:
    row = TABLE[operation_id]
    headers = {"Authorization": authorization} if authorization else {}
    response = world.client.request(
        row.method,
        row.url(world.owner.account_sid, world.call_sid),
        json=row.body,
        headers=headers,
    )
    assert_problem(response, 401)
    assert_untouched(world)


def test_keys_never_appear_in_logs_or_answers(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    revoked = make_key(world.settings.database_url, world.owner)
    _revoke(world.settings, revoked)
    forged = AccountKey(world.owner.account_sid, world.owner.prefix + "." + "B" * 43)
    answers = []
    for operation_id in SECURED:
        row = TABLE[operation_id]
        for key in (world.intruder, revoked, forged):
            answers.append(world.request(row, key, world.owner.account_sid, world.call_sid))
            answers.append(world.request(row, key, key.account_sid, world.call_sid))
    assert {a.status_code for a in answers} >= {401, 403, 404}
    secrets = [k.key.split(".", 1)[1] for k in (world.owner, world.intruder, revoked, forged)]
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in caplog.records)
    assert caplog.records, "requests were logged"
    for secret in secrets:
        assert secret not in logged
        for answer in answers:
            assert secret not in answer.text
            assert secret not in str(answer.headers)
