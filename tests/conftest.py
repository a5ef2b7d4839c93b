"""Shared fixtures: a service on a throwaway SQLite file, an account with a key, a client."""

from __future__ import annotations

import asyncio
import sqlite3
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from calls_api.admin import create_account
from calls_api.app import create_app
from calls_api.settings import Settings
from calls_api.store import open_store

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


def make_account(database_url: str, name: str = "test") -> AccountKey:
    """Create an account and key directly in the database, as the CLI does."""

    async def work() -> AccountKey:
        store = open_store(database_url)
        await store.open()
        try:
            account, key = await create_account(store, name)
        finally:
            await store.close()
        return AccountKey(account.account_sid, key.secret)

    return asyncio.run(work())


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "calls.db"


@pytest.fixture
def settings(database_path: Path) -> Settings:
    # Response validation is on in the tests: every answer is checked against the spec.
    return Settings(database_url=f"sqlite:///{database_path}", validate_responses=True)


@pytest.fixture
def account(settings: Settings) -> AccountKey:
    return make_account(settings.database_url, "first")


@pytest.fixture
def other_account(settings: Settings) -> AccountKey:
    return make_account(settings.database_url, "second")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def count_calls(database_path: Path) -> int:
    """How many calls are stored, read straight from the file."""
    with sqlite3.connect(database_path) as db:
        return int(db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
