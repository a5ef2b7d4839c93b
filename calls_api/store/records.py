"""What the store keeps, independent of the API's models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Account:
    """An account: the owner of calls and API keys."""

    account_sid: str
    name: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: its public prefix and the hash of the whole key."""

    prefix: str
    account_sid: str
    key_hash: str
    date_created: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as stored."""

    call_sid: str
    account_sid: str
    from_: str
    to: str
    status: str
    direction: str
    answer_url: str
    event_url: str | None
    event_method: str
    timeout: int
    time_limit: int | None
    tag: dict[str, Any] | None
    headers: dict[str, str] | None
    date_created: datetime
    date_updated: datetime
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int | None = None
