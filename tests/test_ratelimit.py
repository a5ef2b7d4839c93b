"""Rate limits per API key and per account: 429 problems with Retry-After, counted in the
process or shared by several instances through Redis."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, count_calls, make_key, serving

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def calls_url(account: AccountKey) -> str:
    return f"/v1/Accounts/{account.account_sid}/Calls"


def assert_too_many(response: Any, key: AccountKey, window: int) -> int:
    """A 429 problem with a Retry-After in whole seconds within the window; returns it."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-content-type-options"] == "nosniff"
    problem = response.json()
    assert problem["status"] == 429
    assert problem["title"] == "Too Many Requests"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    assert f"retry after {retry_after} seconds" in problem["detail"]
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-reset"] == str(retry_after)
    assert key.key not in response.text
    assert key.key.split(".", 1)[1] not in str(response.headers)
    return retry_after


def test_a_key_past_its_budget_gets_429_with_retry_after(
    settings: Settings,
    account: AccountKey,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="calls_api.access")
    limited = settings.model_copy(update={"rate_limit_per_key": 3, "rate_limit_window": 60})
    with serving(limited) as client:
        statuses = [
            client.post(calls_url(account), json=SEED_REQUEST, headers=account.headers).status_code
            for _ in range(3)
        ]
        refused = client.post(calls_url(account), json=SEED_REQUEST, headers=account.headers)
        refused_read = client.get(calls_url(account), headers=account.headers)
    assert statuses == [201, 201, 201]
    assert_too_many(refused, account, 60)
    assert refused.headers["ratelimit-limit"] == "3"
    assert "API key may make 3 requests in 60 seconds" in refused.json()["detail"]
    assert_too_many(refused_read, account, 60)
    # The refused create placed nothing: exactly the three that were accepted are stored.
    assert count_calls(database_url) == 3
    # The request log names the account that was refused (and never the key).
    refused_lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "calls_api.access" and " 429 " in r.getMessage()
    ]
    assert len(refused_lines) == 2
    assert all(line.endswith(f"account={account.account_sid}") for line in refused_lines)


def test_each_key_has_its_own_budget(settings: Settings, account: AccountKey) -> None:
    second = make_key(settings.database_url, account)
    limited = settings.model_copy(update={"rate_limit_per_key": 2, "rate_limit_per_account": 100})
    with serving(limited) as client:
        first = [client.get(calls_url(account), headers=account.headers) for _ in range(3)]
        other = [client.get(calls_url(second), headers=second.headers) for _ in range(2)]
    assert [r.status_code for r in first] == [200, 200, 429]
    assert [r.status_code for r in other] == [200, 200]


def test_an_accounts_keys_share_the_account_budget(
    settings: Settings, account: AccountKey, other_account: AccountKey
) -> None:
    second = make_key(settings.database_url, account)
    limited = settings.model_copy(update={"rate_limit_per_key": 100, "rate_limit_per_account": 3})
    with serving(limited) as client:
        used = [
            client.get(calls_url(key), headers=key.headers).status_code
            for key in (account, second, account)
        ]
        refused = [client.get(calls_url(key), headers=key.headers) for key in (account, second)]
        unrelated = client.get(calls_url(other_account), headers=other_account.headers)
    assert used == [200, 200, 200]
    for response in refused:
        assert_too_many(response, account, 60)
        assert "account may make 3 requests in 60 seconds" in response.json()["detail"]
    assert unrelated.status_code == 200


def test_the_budget_comes_back_after_retry_after(settings: Settings, account: AccountKey) -> None:
    limited = settings.model_copy(update={"rate_limit_per_key": 2, "rate_limit_window": 1})
    with serving(limited) as client:
        assert [
            client.get(calls_url(account), headers=account.headers).status_code for _ in range(2)
        ] == [200, 200]
        refused = client.get(calls_url(account), headers=account.headers)
        retry_after = assert_too_many(refused, account, 1)
        time.sleep(retry_after)
        deadline = time.monotonic() + 3
        while (
            status := client.get(calls_url(account), headers=account.headers).status_code
        ) != 200:
            assert status == 429
            assert time.monotonic() < deadline, "the budget never came back"
            time.sleep(0.1)


def test_zero_turns_a_limit_off_and_failed_authentication_is_not_counted(
    settings: Settings, account: AccountKey
) -> None:
    unlimited = settings.model_copy(
        update={"rate_limit_per_key": 0, "rate_limit_per_account": 0, "rate_limit_window": 60}
    )
    with serving(unlimited) as client:
        assert {
            client.get(calls_url(account), headers=account.headers).status_code for _ in range(30)
        } == {200}
    limited = settings.model_copy(update={"rate_limit_per_key": 2})
    with serving(limited) as client:
        wrong = {"Authorization": f"Bearer {account.key}x"}
        assert {client.get(calls_url(account), headers=wrong).status_code for _ in range(5)} == {
            401
        }
        assert client.get(calls_url(account), headers=account.headers).status_code == 200


def test_the_defaults_are_generous() -> None:
    defaults = Settings()
    # 100 requests a second for one key, on average over a minute, all of it as a burst if
    # need be: no test suite nor any ordinary client comes near it.
    assert defaults.rate_limit_per_key / defaults.rate_limit_window >= 100
    assert defaults.rate_limit_per_account >= defaults.rate_limit_per_key
    assert defaults.redis_url is None


# -- shared through Redis ------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    """CALLS_TEST_REDIS_URL when set (it must answer), else the default loopback Redis when it
    answers, else skip."""
    configured = os.environ.get("CALLS_TEST_REDIS_URL")
    url = configured or DEFAULT_REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
    except redis.RedisError as exc:
        if configured:
            pytest.fail(f"CALLS_TEST_REDIS_URL={configured} does not answer: {exc}")
        pytest.skip(f"no Redis at {url} ({exc}); set CALLS_TEST_REDIS_URL to require one")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"calls-api-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(match=f"{prefix}:*"))


def test_two_instances_share_one_budget_through_redis(
    settings: Settings, account: AccountKey, redis_url: str, redis_prefix: str
) -> None:
    shared = settings.model_copy(
        update={
            "rate_limit_per_key": 4,
            "rate_limit_window": 60,
            "redis_url": redis_url,
            "redis_prefix": redis_prefix,
        }
    )
    with serving(shared) as first, serving(shared) as second:
        statuses = [
            client.get(calls_url(account), headers=account.headers).status_code
            for client in (first, second, first, second)
        ]
        refused = [
            client.get(calls_url(account), headers=account.headers) for client in (first, second)
        ]
        stored = redis.Redis.from_url(redis_url).keys(f"{redis_prefix}:ratelimit*")
    assert statuses == [200, 200, 200, 200]
    for response in refused:
        assert_too_many(response, account, 60)
    assert stored, "the counts were kept in Redis, under the configured prefix"


def test_without_redis_each_instance_counts_on_its_own(
    settings: Settings, account: AccountKey, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = settings.model_copy(
        update={
            "rate_limit_per_key": 3,
            "rate_limit_window": 60,
            "redis_url": f"redis://127.0.0.1:{port}/0",
        }
    )
    with serving(down) as client:
        started = time.monotonic()
        statuses = [
            client.get(calls_url(account), headers=account.headers).status_code for _ in range(4)
        ]
        elapsed = time.monotonic() - started
    assert statuses == [200, 200, 200, 429]
    assert elapsed < 2.0, f"an unreachable Redis slowed requests down: {elapsed:.2f}s"
    assert any("Redis is not reachable" in r.getMessage() for r in caplog.records)
