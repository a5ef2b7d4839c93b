"""The rest of the Calls resource over HTTP: lifecycle and webhooks end to end, list and
paging, update (hang up, redirect), delete, events, idempotency, jambonz's request shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from calls_api import signing
from calls_api.app import create_app
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, count_calls, make_account, query
from tests.receiver import HANGUP_VERBS, Receiver, running_receiver

FAST: dict[str, Any] = {
    "sim_trying_seconds": 0.02,
    "sim_ring_seconds": 0.1,
    "sim_talk_seconds": 0.2,
    "engine_poll_seconds": 0.05,
    "webhook_retry_base": 0.05,
    "webhook_retry_max": 0.2,
    "allow_private_webhooks": True,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        running.bodies["/answer"] = HANGUP_VERBS
        yield running


@pytest.fixture
def fast_settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, validate_responses=True, **FAST)


@pytest.fixture
def api(fast_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(fast_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def me(fast_settings: Settings) -> AccountKey:
    return make_account(fast_settings.database_url, "me")


def calls_url(account: AccountKey) -> str:
    return f"/v1/Accounts/{account.account_sid}/Calls"


def body_for(receiver: Receiver, **changes: Any) -> dict[str, Any]:
    return {
        **SEED_REQUEST,
        "answer_url": receiver.url("/answer"),
        "event_url": receiver.url("/events"),
        **changes,
    }


def wait_until(check: Callable[[], Any], seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def status_of(api: TestClient, me: AccountKey, call_sid: str) -> str:
    return str(api.get(f"{calls_url(me)}/{call_sid}", headers=me.headers).json()["status"])


def secret_of(settings: Settings, account_sid: str) -> str:
    rows = query(
        settings.database_url,
        "SELECT webhook_secret FROM accounts WHERE account_sid = ?",
        (account_sid,),
    )
    return str(rows[0][0])


def test_a_call_runs_to_completed_with_signed_ordered_events(
    api: TestClient, me: AccountKey, receiver: Receiver, fast_settings: Settings
) -> None:
    created = api.post(calls_url(me), json=body_for(receiver), headers=me.headers)
    assert created.status_code == 201
    sid = created.json()["call_sid"]
    events = receiver.wait_for("/events", 4)
    payloads = [e.json() for e in events]
    assert [p["call_status"] for p in payloads] == ["trying", "ringing", "in-progress", "completed"]
    assert [p["sequence"] for p in payloads] == [1, 2, 3, 4]
    assert all(p["call_sid"] == sid and p["account_sid"] == me.account_sid for p in payloads)
    assert "duration" not in payloads[0]
    assert isinstance(payloads[-1]["duration"], int)
    secret = secret_of(fast_settings, me.account_sid)
    for event in events:
        assert signing.verify(secret, event.body, event.headers["jambonz-signature"])
        assert not signing.verify("another secret", event.body, event.headers["jambonz-signature"])
    answer = receiver.received("/answer")
    assert len(answer) == 1 and answer[0].json()["call_sid"] == sid
    call = wait_until(
        lambda: (
            (c := api.get(f"{calls_url(me)}/{sid}", headers=me.headers).json())["end_time"] and c
        )
    )
    assert call["status"] == "completed"
    assert call["start_time"] and call["end_time"]
    assert call["duration"] == payloads[-1]["duration"]
    history = api.get(f"{calls_url(me)}/{sid}/Events", headers=me.headers)
    assert history.status_code == 200
    entries = wait_until(
        lambda: (
            (h := api.get(f"{calls_url(me)}/{sid}/Events", headers=me.headers).json())
            and all(e["state"] == "delivered" for e in h)
            and len(h) == 4
            and h
        )
    )
    assert [e["sequence"] for e in entries] == [1, 2, 3, 4]
    assert all(len(e["attempts"]) == 1 and e["attempts"][0]["http_status"] == 200 for e in entries)


def test_get_event_method_sends_fields_as_a_signed_query(
    api: TestClient, me: AccountKey, receiver: Receiver, fast_settings: Settings
) -> None:
    body = body_for(receiver, event_method="GET", to="+15550000486")
    api.post(calls_url(me), json=body, headers=me.headers)
    events = receiver.wait_for("/events", 3)
    assert all(e.method == "GET" and e.body == b"" for e in events)
    assert b"call_status=busy" in events[-1].query
    secret = secret_of(fast_settings, me.account_sid)
    assert signing.verify(secret, events[-1].query, events[-1].headers["jambonz-signature"])


def test_a_down_receiver_gets_its_events_later_and_events_show_why(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    receiver.statuses["/events"] = [503, 503]
    sid = api.post(calls_url(me), json=body_for(receiver), headers=me.headers).json()["call_sid"]
    receiver.wait_for("/events", 6)
    entries = wait_until(
        lambda: (
            (h := api.get(f"{calls_url(me)}/{sid}/Events", headers=me.headers).json())
            and len(h) == 4
            and all(e["state"] == "delivered" for e in h)
            and h
        )
    )
    first = entries[0]
    assert [a["http_status"] for a in first["attempts"]] == [503, 503, 200]
    assert all(a["latency_ms"] >= 0 for a in first["attempts"])


def test_hang_up_before_answer_cancels_and_after_answer_completes(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    ringing = api.post(
        calls_url(me), json=body_for(receiver, to="+15550000487"), headers=me.headers
    ).json()["call_sid"]
    wait_until(lambda: status_of(api, me, ringing) == "ringing")
    hung = api.put(f"{calls_url(me)}/{ringing}", json={"status": "completed"}, headers=me.headers)
    assert hung.status_code == 200
    assert hung.json()["status"] == "canceled"
    assert hung.json()["duration"] is None
    again = api.put(f"{calls_url(me)}/{ringing}", json={"status": "completed"}, headers=me.headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"

    receiver.bodies["/answer"] = [{"verb": "pause", "length": 60}]
    talking = api.post(calls_url(me), json=body_for(receiver), headers=me.headers).json()
    sid = talking["call_sid"]
    wait_until(lambda: status_of(api, me, sid) == "in-progress")
    ended = api.post(
        f"{calls_url(me)}/{sid}", json={"call_status": "completed"}, headers=me.headers
    )
    assert ended.status_code == 200
    assert ended.json()["status"] == "completed"
    assert ended.json()["duration"] is not None
    statuses = [
        e.json()["call_status"]
        for e in receiver.wait_for("/events", 7)
        if e.json()["call_sid"] == sid
    ]
    assert statuses == ["trying", "ringing", "in-progress", "completed"]


def test_jambonz_no_answer_and_invalid_updates(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    sid = api.post(
        calls_url(me), json=body_for(receiver, to="+15550000487"), headers=me.headers
    ).json()["call_sid"]
    url = f"{calls_url(me)}/{sid}"
    redirect = api.put(url, json={"answer_url": receiver.url("/next")}, headers=me.headers)
    assert redirect.status_code == 409, "only an answered call can be redirected"
    for bad in (
        {},
        {"status": "completed", "answer_url": receiver.url("/x")},
        {"mute": True},
        {"status": "ringing"},
    ):
        assert api.put(url, json=bad, headers=me.headers).status_code == 400, bad
    ended = api.put(url, json={"call_status": "no-answer"}, headers=me.headers)
    assert ended.status_code == 200
    assert ended.json()["status"] == "no-answer"


def test_redirect_fetches_new_instructions_now(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    receiver.bodies["/answer"] = [{"verb": "pause", "length": 60}]
    receiver.bodies["/next"] = [{"verb": "say", "text": "bye"}, {"verb": "hangup"}]
    sid = api.post(calls_url(me), json=body_for(receiver), headers=me.headers).json()["call_sid"]
    wait_until(lambda: status_of(api, me, sid) == "in-progress")
    moved = api.put(
        f"{calls_url(me)}/{sid}",
        json={"call_hook": {"url": receiver.url("/next"), "username": "u", "password": "p"}},
        headers=me.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["answer_url"] == receiver.url("/next")
    assert receiver.received("/next")[0].headers["authorization"].startswith("Basic ")
    wait_until(lambda: status_of(api, me, sid) == "completed")


def test_delete_hangs_up_sends_the_final_event_and_removes_the_call(
    api: TestClient, me: AccountKey, receiver: Receiver, database_url: str
) -> None:
    sid = api.post(
        calls_url(me), json=body_for(receiver, to="+15550000487"), headers=me.headers
    ).json()["call_sid"]
    wait_until(lambda: status_of(api, me, sid) == "ringing")
    deleted = api.delete(f"{calls_url(me)}/{sid}", headers=me.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.get(f"{calls_url(me)}/{sid}", headers=me.headers).status_code == 404
    assert api.get(f"{calls_url(me)}/{sid}/Events", headers=me.headers).status_code == 404
    assert api.delete(f"{calls_url(me)}/{sid}", headers=me.headers).status_code == 404
    events = receiver.wait_for("/events", 3)
    assert events[-1].json()["call_status"] == "canceled"
    assert count_calls(database_url) == 0


def test_list_filters_and_pages_stably_while_calls_arrive(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    sids = [
        api.post(
            calls_url(me), json=body_for(receiver, to=f"+1555000{i:04d}"), headers=me.headers
        ).json()["call_sid"]
        for i in range(7)
    ]
    first = api.get(f"{calls_url(me)}?page_size=3", headers=me.headers)
    assert first.status_code == 200
    assert [c["call_sid"] for c in first.json()] == sids[::-1][:3]
    link = first.headers["link"]
    assert link.endswith('>; rel="next"')
    # A call arriving between pages does not shift the pages already being read.
    api.post(calls_url(me), json=body_for(receiver), headers=me.headers)
    seen = [c["call_sid"] for c in first.json()]
    next_url = link[1 : link.index(">")]
    while next_url:
        page = api.get(next_url, headers=me.headers)
        assert page.status_code == 200
        seen += [c["call_sid"] for c in page.json()]
        link = page.headers.get("link", "")
        next_url = link[1 : link.index(">")] if link else ""
    assert seen == sids[::-1]

    only = api.get(f"{calls_url(me)}/?to=%2B15550000003", headers=me.headers)
    assert only.status_code == 200, "the trailing slash answers directly"
    assert [c["call_sid"] for c in only.json()] == [sids[3]]
    assert api.get(f"{calls_url(me)}?page_token=nonsense", headers=me.headers).status_code == 400
    assert api.get(f"{calls_url(me)}?page_size=0", headers=me.headers).status_code == 400
    assert api.get(f"{calls_url(me)}?color=red", headers=me.headers).status_code == 400


def test_list_filters_by_status_direction_and_time(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    busy = api.post(
        calls_url(me), json=body_for(receiver, to="+15550000486"), headers=me.headers
    ).json()["call_sid"]
    wait_until(lambda: status_of(api, me, busy) == "busy")
    for name in ("status", "callStatus"):
        listed = api.get(f"{calls_url(me)}?{name}=busy", headers=me.headers).json()
        assert [c["call_sid"] for c in listed] == [busy]
    assert (
        api.get(f"{calls_url(me)}?status=busy&callStatus=queued", headers=me.headers).json() == []
    )
    assert len(api.get(f"{calls_url(me)}?direction=outbound", headers=me.headers).json()) == 1
    later = api.get(f"{calls_url(me)}?created_after=2999-01-01T00:00:00Z", headers=me.headers)
    assert later.json() == []
    earlier = api.get(f"{calls_url(me)}?created_before=2999-01-01T00:00:00Z", headers=me.headers)
    assert len(earlier.json()) == 1


def test_list_is_per_account(
    api: TestClient, me: AccountKey, receiver: Receiver, fast_settings: Settings
) -> None:
    other = make_account(fast_settings.database_url, "other")
    api.post(calls_url(other), json=body_for(receiver), headers=other.headers)
    assert api.get(calls_url(me), headers=me.headers).json() == []
    assert api.get(calls_url(other), headers=me.headers).status_code == 403


def test_idempotent_create_places_one_call(
    api: TestClient, me: AccountKey, receiver: Receiver, database_url: str
) -> None:
    headers = {**me.headers, "Idempotency-Key": "order-4711"}
    body = body_for(receiver, to="+15550000487")
    first = api.post(calls_url(me), json=body, headers=headers)
    second = api.post(calls_url(me), json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert count_calls(database_url) == 1
    different = api.post(calls_url(me), json={**body, "from": "+15559999999"}, headers=headers)
    assert different.status_code == 422
    assert "order-4711" in different.json()["detail"]
    assert count_calls(database_url) == 1


def test_concurrent_requests_with_one_key_create_one_call(
    fast_settings: Settings, me: AccountKey, receiver: Receiver, database_url: str
) -> None:
    app = create_app(fast_settings)
    headers = {**me.headers, "Idempotency-Key": "same-key"}
    body = body_for(receiver)
    results: list[Any] = []
    with TestClient(app) as client:
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    client.post(calls_url(me), json=body, headers=headers)
                )
            )
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.status_code for r in results] == [201] * 8
    assert len({r.json()["call_sid"] for r in results}) == 1
    assert count_calls(database_url) == 1


def test_jambonz_request_shape_is_accepted(
    api: TestClient, me: AccountKey, receiver: Receiver
) -> None:
    body = {
        "from": "+15550000000",
        "to": {"type": "sip", "sipUri": "sip:early@example.com"},
        "call_hook": {
            "url": receiver.url("/answer"),
            "method": "POST",
            "username": "app",
            "password": "secret",
        },
        "call_status_hook": receiver.url("/events"),
        "timeLimit": 30,
        "tag": {"crm": 1},
    }
    created = api.post(calls_url(me), json=body, headers=me.headers)
    assert created.status_code == 201, created.text
    call = created.json()
    assert call["sid"] == call["call_sid"]
    assert call["to"] == "sip:early@example.com"
    assert call["answer_url"] == receiver.url("/answer")
    assert call["event_url"] == receiver.url("/events")
    assert call["time_limit"] == 30
    answer = receiver.wait_for("/answer", 1)[0]
    assert answer.headers["authorization"] == "Basic YXBwOnNlY3JldA=="
    statuses = [e.json()["call_status"] for e in receiver.wait_for("/events", 4)]
    assert statuses == ["trying", "early-media", "in-progress", "completed"]


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"application_sid": "abc"}, "application_sid is not accepted"),
        ({"call_hook": "https://example.com/a"}, "give only one of 'answer_url' or 'call_hook'"),
        ({"answer_url": None}, ""),
        ({"call_status_hook": "https://example.com/s"}, "event_url"),
        ({"timeLimit": 5, "time_limit": 5}, "time_limit"),
        ({"to": {"type": "phone"}}, ""),
        ({"to": {"type": "fax", "number": "+15550000001"}}, ""),
        ({"to": {"type": "sip", "number": "+15550000001"}}, ""),
    ],
)
def test_mixed_or_incomplete_shapes_are_clear_400s(
    api: TestClient, me: AccountKey, changes: dict[str, Any], detail: str, database_url: str
) -> None:
    body = {**SEED_REQUEST, **changes}
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post(calls_url(me), json=body, headers=me.headers)
    assert response.status_code == 400, response.text
    assert detail in response.json()["detail"]
    assert count_calls(database_url) == 0


def test_hooks_on_internal_addresses_are_refused_by_default(
    settings: Settings, account: AccountKey, database_url: str
) -> None:
    with TestClient(create_app(settings)) as client:
        for url in (
            "http://127.0.0.1:9/answer",
            "http://localhost/answer",
            "http://10.1.2.3/a",
            "http://169.254.169.254/latest",
            "http://[::1]/a",
        ):
            response = client.post(
                calls_url(account),
                json={**SEED_REQUEST, "answer_url": url},
                headers=account.headers,
            )
            assert response.status_code == 400, url
            assert "internal address" in response.json()["detail"]
            response = client.post(
                calls_url(account), json={**SEED_REQUEST, "event_url": url}, headers=account.headers
            )
            assert response.status_code == 400, url
    assert count_calls(database_url) == 0
