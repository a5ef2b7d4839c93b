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
    webhook_secret: str = ""


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
    answer_method: str = "POST"
    answer_auth: HookAuth | None = None
    event_auth: HookAuth | None = None
    sip_status: int | None = None
    sip_reason: str | None = None
    failure_reason: str | None = None
    # What the engine does next, and when: durable, so a restart carries on.
    next_step: str | None = None
    next_step_at: datetime | None = None
    event_count: int = 0
    # Bumped on every write: an update applies only to the version it was computed from.
    version: int = 0


@dataclass(frozen=True, slots=True)
class HookAuth:
    """Basic-auth credentials for a webhook (jambonz hooks may carry them)."""

    username: str
    password: str


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A status event to record (and send, when the call has an event_url)."""

    call_status: str
    payload: dict[str, Any]
    url: str | None
    method: str
    auth: HookAuth | None
    next_attempt_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One try at sending an event."""

    attempted_at: datetime
    http_status: int | None
    error: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A status event in the outbox, with what happened to it."""

    event_id: int
    call_sid: str
    account_sid: str
    sequence: int
    call_status: str
    payload: dict[str, Any]
    url: str | None
    method: str
    auth: HookAuth | None
    state: str  # pending | delivered | failed | unsent
    attempts: int
    next_attempt_at: datetime | None
    date_created: datetime
    delivered_at: datetime | None
    history: tuple[DeliveryAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class IdempotentCreate:
    """A create remembered under its Idempotency-Key."""

    request_hash: str
    call_sid: str
    response: str
    date_created: datetime


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What a list asks for; None means no condition."""

    status: str | None = None
    direction: str | None = None
    from_: str | None = None
    to: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
