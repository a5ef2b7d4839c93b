"""Shared fixtures: a service on a throwaway database, an account with a key, a client.

Every test that uses a database runs twice: on a SQLite file, and on PostgreSQL in a schema
of its own, dropped afterwards. PostgreSQL is CALLS_TEST_POSTGRES_URL when that is set (then
it must be reachable, or those tests fail); else the default loopback server when one
answers, else those tests are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
import pytest
from starlette.testclient import TestClient

from calls_api.admin import create_account, create_key
from calls_api.app import create_app
from calls_api.services import Services
from calls_api.settings import Settings
from calls_api.store import Store, open_store

T = TypeVar("T")

SEED_REQUEST: dict[str, Any] = {
    "from": "+15550000000",
    "to": "+15550000001",
    "answer_url": "https://example.com/answer",
    "event_url": "https://example.com/events",
    "event_method": "POST",
}


# What the engine changes as a call moves on; everything else stays as created.
LIFECYCLE_FIELDS = frozenset(
    {
        "status",
        "sip_status",
        "sip_reason",
        "date_updated",
        "start_time",
        "end_time",
        "duration",
        "failure_reason",
    }
)


def stable(call: dict[str, Any]) -> dict[str, Any]:
    """A call without the fields its lifecycle changes."""
    return {k: v for k, v in call.items() if k not in LIFECYCLE_FIELDS}


@dataclass
class AccountKey:
    """An account and one of its API keys."""

    account_sid: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def prefix(self) -> str:
        return self.key.split(".", 1)[0]


def with_store(database_url: str, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on a store of its own, straight on the database, as the CLI does."""

    async def run() -> T:
        store = open_store(database_url)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def make_account(database_url: str, name: str = "test") -> AccountKey:
    """Create an account and key directly in the database, as the CLI does."""
    account, key = with_store(database_url, lambda store: create_account(store, name))
    return AccountKey(account.account_sid, key.secret)


def make_key(database_url: str, account: AccountKey) -> AccountKey:
    """Another API key of the account, made as `calls-api keys create` does."""
    key = with_store(database_url, lambda store: create_key(store, account.account_sid))
    return AccountKey(account.account_sid, key.secret)


@contextmanager
def serving(settings: Settings, services: Services | None = None) -> Iterator[TestClient]:
    """The app in a TestClient that answers a server error as the service would (no raise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(settings, services)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


POSTGRES_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", "postgresql"]


def postgres_url_or_skip() -> str:
    """The PostgreSQL server tests use: required when named, else used when it answers."""
    named = os.environ.get("CALLS_TEST_POSTGRES_URL")
    url = named or POSTGRES_DEFAULT_URL
    try:
        psycopg.connect(url, connect_timeout=5 if named else 1).close()
    except psycopg.Error as exc:
        if named:
            pytest.fail(f"CALLS_TEST_POSTGRES_URL is set but PostgreSQL is not reachable: {exc}")
        pytest.skip(
            f"no PostgreSQL answers at {url} (set CALLS_TEST_POSTGRES_URL to require one): {exc}"
        )
    return url


@pytest.fixture(scope="session")
def postgres_server() -> str:
    return postgres_url_or_skip()


def with_schema(url: str, schema: str) -> str:
    """The URL with `schema` first on the search path of every connection."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def postgres_schema(server_url: str) -> Iterator[str]:
    """A fresh, empty schema; its URL while the block runs; dropped afterwards."""
    schema = f"calls_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_schema(server_url, schema)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/calls.db"
        return
    with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Response validation is on in the tests: every answer is checked against the spec.
    return Settings(database_url=database_url, validate_responses=True)


@pytest.fixture
def account(settings: Settings) -> AccountKey:
    return make_account(settings.database_url, "first")


@pytest.fixture
def other_account(settings: Settings) -> AccountKey:
    return make_account(settings.database_url, "second")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with serving(settings) as test_client:
        yield test_client


def query(
    database_url: str, sql: str, params: tuple[Any, ...] = (), *, fetch: bool = True
) -> list[tuple[Any, ...]]:
    """Rows read (or a statement run) straight on the database, past the service."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            cursor = db.execute(sql, params)
            return cursor.fetchall() if fetch else []
    with psycopg.connect(database_url, autocommit=True) as conn:
        pg_cursor = conn.execute(sql.replace("?", "%s"), params)
        return pg_cursor.fetchall() if fetch else []


def count_calls(database_url: str) -> int:
    """How many calls are stored, read straight from the database."""
    return int(query(database_url, "SELECT COUNT(*) FROM calls")[0][0])
