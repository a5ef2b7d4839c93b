"""HTTP behaviour of createCall and getCall, against the app in process."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import SEED_REQUEST, AccountKey, count_calls, stable

SID_CALL = re.compile(r"^CA[0-9a-f]{32}$")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def calls_url(account_sid: str) -> str:
    return f"/v1/Accounts/{account_sid}/Calls"


def create(client: TestClient, account: AccountKey, body: dict[str, Any]) -> Any:
    return client.post(calls_url(account.account_sid), json=body, headers=account.headers)


def assert_problem(response: Any, status: int, detail_contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"] == "about:blank"
    assert problem["detail"]
    assert detail_contains in problem["detail"], problem["detail"]
    return problem


def test_create_answers_201_with_location_and_the_seed_fields(
    client: TestClient, account: AccountKey
) -> None:
    before = datetime.now(UTC)
    response = create(client, account, SEED_REQUEST)

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    call = response.json()
    assert SID_CALL.match(call["call_sid"])
    assert call["account_sid"] == account.account_sid
    assert call["from"] == "+15550000000"
    assert call["to"] == "+15550000001"
    assert call["status"] == "queued"
    assert call["direction"] == "outbound"
    assert call["answer_url"] == "https://example.com/answer"
    assert call["event_url"] == "https://example.com/events"
    assert call["event_method"] == "POST"
    assert call["timeout"] == 60
    for unknown_yet in ("time_limit", "tag", "headers", "start_time", "end_time", "duration"):
        assert call[unknown_yet] is None
    assert RFC3339_UTC.match(call["date_created"])
    created = datetime.fromisoformat(call["date_created"])
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)
    assert call["date_updated"] == call["date_created"]
    assert response.headers["location"] == (
        f"/v1/Accounts/{account.account_sid}/Calls/{call['call_sid']}"
    )


def test_location_retrieves_the_same_call(client: TestClient, account: AccountKey) -> None:
    created = create(client, account, SEED_REQUEST)
    fetched = client.get(created.headers["location"], headers=account.headers)

    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/json"
    assert stable(fetched.json()) == stable(created.json())


def test_optional_fields_are_stored_and_returned(client: TestClient, account: AccountKey) -> None:
    body = {
        "from": "alice",
        "to": "sips:bob@example.com;transport=tls",
        "answer_url": "http://example.com/answer?x=1",
        "event_method": "GET",
        "timeout": 1,
        "time_limit": 14400,
        "tag": {"ticket": "4711", "nested": {"list": [1, 2, None], "ok": True}},
        "headers": {"X-Customer-Id": "42", "x-lower": ""},
    }
    call = create(client, account, body).json()
    fetched = client.get(
        f"{calls_url(account.account_sid)}/{call['call_sid']}", headers=account.headers
    ).json()

    for field, value in body.items():
        assert fetched[field] == value, field
    assert fetched["event_url"] is None


def test_every_create_is_a_new_call(
    client: TestClient, account: AccountKey, database_url: str
) -> None:
    sids = {create(client, account, SEED_REQUEST).json()["call_sid"] for _ in range(5)}
    assert len(sids) == 5
    assert count_calls(database_url) == 5


def test_unknown_call_is_404(client: TestClient, account: AccountKey) -> None:
    response = client.get(f"{calls_url(account.account_sid)}/CA{'0' * 32}", headers=account.headers)
    assert_problem(response, 404, f"CA{'0' * 32}")


def test_another_accounts_call_is_not_found(
    client: TestClient, account: AccountKey, other_account: AccountKey
) -> None:
    theirs = create(client, other_account, SEED_REQUEST).json()["call_sid"]
    response = client.get(f"{calls_url(account.account_sid)}/{theirs}", headers=account.headers)
    assert_problem(response, 404)
    assert response.json()["detail"] == (f"No call {theirs} in account {account.account_sid}"), (
        "the answer must not reveal that the call exists elsewhere"
    )


def test_a_key_on_another_accounts_path_is_403(
    client: TestClient, account: AccountKey, other_account: AccountKey, database_url: str
) -> None:
    theirs = create(client, other_account, SEED_REQUEST).json()["call_sid"]
    path = calls_url(other_account.account_sid)

    assert_problem(client.get(f"{path}/{theirs}", headers=account.headers), 403)
    assert_problem(client.post(path, json=SEED_REQUEST, headers=account.headers), 403)
    assert count_calls(database_url) == 1


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer ck_000000000000.doesnotexist",
        "Bearer ck_short.x",
    ],
)
def test_missing_or_invalid_key_is_401(
    client: TestClient, account: AccountKey, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for response in (
        client.get(f"{calls_url(account.account_sid)}/CA{'0' * 32}", headers=headers),
        client.post(calls_url(account.account_sid), json=SEED_REQUEST, headers=headers),
    ):
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_tampered_key_with_a_real_prefix_is_401(client: TestClient, account: AccountKey) -> None:
    forged = account.prefix + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    response = client.get(
        f"{calls_url(account.account_sid)}/CA{'0' * 32}",
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert_problem(response, 401)


LONG = "x" * 257
BAD_BODIES: list[tuple[str, Any, str]] = [
    ("from missing", {k: v for k, v in SEED_REQUEST.items() if k != "from"}, "from"),
    ("to missing", {k: v for k, v in SEED_REQUEST.items() if k != "to"}, "to"),
    (
        "answer_url missing",
        {k: v for k, v in SEED_REQUEST.items() if k != "answer_url"},
        "answer_url",
    ),
    ("from empty", {**SEED_REQUEST, "from": ""}, ""),
    ("from too long", {**SEED_REQUEST, "from": LONG}, ""),
    ("from not a string", {**SEED_REQUEST, "from": 15550000000}, "string"),
    ("to not E.164", {**SEED_REQUEST, "to": "5550000001"}, ""),
    ("to with a newline", {**SEED_REQUEST, "to": "+15550000001\n"}, "to"),
    ("to an http URL", {**SEED_REQUEST, "to": "http://example.com"}, ""),
    ("to as jambonz object (not yet supported)", {**SEED_REQUEST, "to": {"type": "phone"}}, ""),
    ("answer_url relative", {**SEED_REQUEST, "answer_url": "/answer"}, "answer_url"),
    ("answer_url ftp", {**SEED_REQUEST, "answer_url": "ftp://example.com/a"}, "answer_url"),
    ("answer_url with a space", {**SEED_REQUEST, "answer_url": "https://exa mple.com/"}, ""),
    ("event_url not a URL", {**SEED_REQUEST, "event_url": "events"}, "event_url"),
    ("event_method PUT", {**SEED_REQUEST, "event_method": "PUT"}, "PUT"),
    ("event_method null", {**SEED_REQUEST, "event_method": None}, ""),
    ("timeout 0", {**SEED_REQUEST, "timeout": 0}, ""),
    ("timeout 601", {**SEED_REQUEST, "timeout": 601}, ""),
    ("timeout a string", {**SEED_REQUEST, "timeout": "60"}, ""),
    ("timeout a float", {**SEED_REQUEST, "timeout": 1.5}, ""),
    ("time_limit 0", {**SEED_REQUEST, "time_limit": 0}, ""),
    ("time_limit 14401", {**SEED_REQUEST, "time_limit": 14401}, ""),
    ("tag not an object", {**SEED_REQUEST, "tag": ["a"]}, ""),
    ("tag over 8 KiB", {**SEED_REQUEST, "tag": {"blob": "x" * 8200}}, "8192"),
    ("header without X-", {**SEED_REQUEST, "headers": {"Foo": "1"}}, "Foo"),
    ("header name with a colon", {**SEED_REQUEST, "headers": {"X-A:b": "1"}}, "X-A:b"),
    ("header value not a string", {**SEED_REQUEST, "headers": {"X-A": 1}}, ""),
    ("header value with CRLF", {**SEED_REQUEST, "headers": {"X-A": "a\r\nVia: evil"}}, "X-A"),
    ("too many headers", {**SEED_REQUEST, "headers": {f"X-H{i}": "v" for i in range(33)}}, ""),
    ("unknown property", {**SEED_REQUEST, "application_sid": "x"}, "application_sid"),
    ("body is an array", [SEED_REQUEST], ""),
    ("body is null", None, ""),
    ("body is a string", "call me", ""),
]


@pytest.mark.parametrize(
    ("body", "detail"), [(b, d) for _, b, d in BAD_BODIES], ids=[name for name, _, _ in BAD_BODIES]
)
def test_bad_bodies_are_400_and_store_nothing(
    client: TestClient, account: AccountKey, database_url: str, body: Any, detail: str
) -> None:
    response = create(client, account, body)
    assert_problem(response, 400, detail)
    assert count_calls(database_url) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"\xff\xfe{\x00", "application/json", 400),
        (b'{"from": "+1555', "application/json", 400),
        (b"", "application/json", 400),
        (
            b'{"from": "+1", "to": "+15550000001", "answer_url": "https://example.com/a", '
            b'"tag": {"a": "\\ud800"}}',
            "application/json",
            400,
        ),
        (b"from=x", "application/x-www-form-urlencoded", 415),
        (b"hello", "text/plain", 415),
        (b"{}", "application/xml", 415),
    ],
    ids=["not UTF-8", "truncated JSON", "empty", "lone surrogate", "form", "text", "xml"],
)
def test_undecodable_or_foreign_bodies_are_4xx(
    client: TestClient,
    account: AccountKey,
    database_url: str,
    content: bytes,
    content_type: str,
    status: int,
) -> None:
    response = client.post(
        calls_url(account.account_sid),
        content=content,
        headers={**account.headers, "Content-Type": content_type},
    )
    assert_problem(response, status)
    assert count_calls(database_url) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v1/Accounts/ACnothex00000000000000000000000000/Calls/CA" + "0" * 32,
        "/v1/Accounts/AC" + "0" * 32 + "/Calls/ca" + "0" * 32,
        "/v1/Accounts/AC" + "0" * 32 + "/Calls/CA" + "0" * 31,
        "/v1/Accounts/AC" + "0" * 32 + "/Calls/CA" + "A" * 32,
    ],
)
def test_malformed_sids_are_400(client: TestClient, account: AccountKey, path: str) -> None:
    # The key is valid, so the request reaches validation rather than stopping at auth.
    path = path.replace("AC" + "0" * 32, account.account_sid)
    assert_problem(client.get(path, headers=account.headers), 400, "does not match")


def test_unknown_query_parameters_are_rejected(client: TestClient, account: AccountKey) -> None:
    call = create(client, account, SEED_REQUEST).json()
    response = client.get(
        f"{calls_url(account.account_sid)}/{call['call_sid']}?verbose=1", headers=account.headers
    )
    assert_problem(response, 400, "verbose")


def test_unknown_paths_and_methods_are_problems(client: TestClient, account: AccountKey) -> None:
    assert_problem(client.get("/v1/Nothing/here", headers=account.headers), 404)
    assert_problem(client.get("/elsewhere"), 404)
    response = client.patch(
        f"{calls_url(account.account_sid)}/CA{'0' * 32}", headers=account.headers
    )
    assert_problem(response, 405, "PATCH is not allowed here; allowed: DELETE, GET, POST, PUT")
    assert response.headers["allow"] == "DELETE, GET, POST, PUT"


def test_no_5xx_for_odd_but_harmless_requests(client: TestClient, account: AccountKey) -> None:
    url = calls_url(account.account_sid)
    odd = [
        client.post(
            url,
            json=SEED_REQUEST,
            headers={**account.headers, "Content-Type": "application/json; charset=utf-8"},
        ),
        client.post(
            url,
            json={**SEED_REQUEST, "tag": {"emoji": "\U0001f4de", "nul": "\x00"}},
            headers=account.headers,
        ),
        client.get(url + "/CA" + "0" * 32 + "%00", headers=account.headers),
        client.get(url + "/CA" + "0" * 32 + "%0A", headers=account.headers),
    ]
    for response in odd:
        assert response.status_code < 500, response.text


def test_wide_integers_in_tag_are_kept_exactly(client: TestClient, account: AccountKey) -> None:
    wide = 11039168098409751915254136176640
    raw = (
        b'{"from": "+15550000000", "to": "+15550000001", "answer_url": "https://example.com/a", '
        b'"tag": {"wide": ' + str(wide).encode() + b', "negative": -9223372036854775809}}'
    )
    created = client.post(
        f"/v1/Accounts/{account.account_sid}/Calls",
        content=raw,
        headers={**account.headers, "Content-Type": "application/json", "Idempotency-Key": "w"},
    )
    assert created.status_code == 201, created.text
    fetched = client.get(created.headers["location"], headers=account.headers)
    assert fetched.json()["tag"] == {"wide": wide, "negative": -9223372036854775809}
    assert str(wide).encode() in fetched.content


def test_nan_and_infinity_are_not_json(client: TestClient, account: AccountKey) -> None:
    for literal in (b"NaN", b"Infinity", b"-Infinity"):
        response = client.post(
            f"/v1/Accounts/{account.account_sid}/Calls",
            content=b'{"from": "+1", "to": "+15550000001", "answer_url": "https://e.com/a", '
            b'"tag": {"x": ' + literal + b"}}",
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 400, "is not JSON")
