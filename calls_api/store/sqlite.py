"""The embedded SQLite store.

Queries run on the event loop thread: on a local file they take microseconds, less than a
hop to a worker thread would cost. WAL lets readers proceed while one writer commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from calls_api.store import IdempotencyConflict, StoreUnavailable
from calls_api.store.migrations import MIGRATIONS
from calls_api.store.records import (
    Account,
    ApiKey,
    CallFilter,
    CallRecord,
    DeliveryAttempt,
    EventRecord,
    HookAuth,
    IdempotentCreate,
    NewEvent,
)

P = ParamSpec("P")
R = TypeVar("R")

# Column order matches CallRecord's fields.
_CALL_COLUMNS = (
    "call_sid, account_sid, from_number, to_number, status, direction, answer_url, event_url, "
    "event_method, timeout, time_limit, tag, headers, date_created, date_updated, start_time, "
    "end_time, duration, answer_method, answer_auth, event_auth, sip_status, sip_reason, "
    "failure_reason, next_step, next_step_at, event_count, version"
)
_CALL_PLACEHOLDERS = ", ".join("?" for _ in _CALL_COLUMNS.split(","))
# What a transition may change; the sids, parties and creation time never do.
_MUTABLE = (
    "status",
    "answer_url",
    "answer_method",
    "answer_auth",
    "date_updated",
    "start_time",
    "end_time",
    "duration",
    "sip_status",
    "sip_reason",
    "failure_reason",
    "next_step",
    "next_step_at",
    "event_count",
)
_EVENT_COLUMNS = (
    "event_id, call_sid, account_sid, sequence, call_status, payload, url, method, auth, state, "
    "attempts, next_attempt_at, date_created, delivered_at"
)


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so that text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _auth_json(auth: HookAuth | None) -> str | None:
    return None if auth is None else _json({"username": auth.username, "password": auth.password})


def _auth(text: str | None) -> HookAuth | None:
    return None if text is None else HookAuth(**json.loads(text))


def _unavailable(function: Callable[P, R]) -> Callable[P, R]:
    """Turn the database's operational failures into StoreUnavailable."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                raise
            raise StoreUnavailable(f"the database is not usable: {exc}") from exc

    return wrapper


class SQLiteStore:
    """Store on one SQLite file (or :memory:)."""

    def __init__(self, path: str, *, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 5.0) -> SQLiteStore:
        """sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:."""
        prefix = "sqlite:///"
        if not url.startswith(prefix) or url == prefix:
            raise ValueError(f"a SQLite URL looks like sqlite:///var/calls.db, not {url!r}")
        return cls(url[len(prefix) :], timeout=timeout)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreUnavailable("the store is not open")
        return self._db

    async def open(self) -> None:
        if self._db is not None:
            return
        self._open()

    @_unavailable
    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            _migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- low-level helpers; every one maps database failures to StoreUnavailable --

    @_unavailable
    def _scalar(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @_unavailable
    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        return self.db.execute(sql, params).rowcount

    @_unavailable
    def _fetchone(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.db.execute(sql, params).fetchone()
        return row

    @_unavailable
    def _fetchall(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params).fetchall()

    # -- health --

    async def ping(self) -> None:
        self._scalar("SELECT 1")

    async def schema_version(self) -> int:
        return int(self._scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    # -- accounts and keys --

    async def count_accounts(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM accounts"))

    async def create_account(self, account: Account) -> None:
        self._execute(
            "INSERT INTO accounts (account_sid, name, date_created, webhook_secret) "
            "VALUES (?, ?, ?, ?)",
            (
                account.account_sid,
                account.name,
                format_time(account.date_created),
                account.webhook_secret,
            ),
        )

    async def get_account(self, account_sid: str) -> Account | None:
        row = self._fetchone(
            "SELECT account_sid, name, date_created, webhook_secret FROM accounts "
            "WHERE account_sid = ?",
            (account_sid,),
        )
        if row is None:
            return None
        return Account(row[0], row[1], datetime.fromisoformat(row[2]), row[3])

    async def set_webhook_secret(self, account_sid: str, secret: str) -> bool:
        changed = self._execute(
            "UPDATE accounts SET webhook_secret = ? WHERE account_sid = ?", (secret, account_sid)
        )
        return changed > 0

    async def add_api_key(self, key: ApiKey) -> None:
        self._execute(
            "INSERT INTO api_keys (prefix, account_sid, key_hash, date_created) "
            "VALUES (?, ?, ?, ?)",
            (key.prefix, key.account_sid, key.key_hash, format_time(key.date_created)),
        )

    async def get_api_key(self, prefix: str) -> ApiKey | None:
        row = self._fetchone(
            "SELECT prefix, account_sid, key_hash, date_created, revoked_at "
            "FROM api_keys WHERE prefix = ?",
            (prefix,),
        )
        if row is None:
            return None
        return ApiKey(row[0], row[1], row[2], datetime.fromisoformat(row[3]), _parse_time(row[4]))

    async def revoke_api_key(self, prefix: str) -> bool:
        changed = self._execute(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
            (format_time(datetime.now(UTC)), prefix),
        )
        return changed > 0

    # -- calls --

    async def create_call(
        self, call: CallRecord, idempotency: tuple[str, IdempotentCreate] | None = None
    ) -> None:
        self._create_call(call, idempotency)

    @_unavailable
    def _create_call(
        self, call: CallRecord, idempotency: tuple[str, IdempotentCreate] | None
    ) -> None:
        try:
            self._insert_call(call, idempotency)
        except sqlite3.IntegrityError as exc:
            if idempotency is not None and "idempotency_keys" in str(exc):
                raise IdempotencyConflict(idempotency[0]) from exc
            raise

    def _insert_call(
        self, call: CallRecord, idempotency: tuple[str, IdempotentCreate] | None
    ) -> None:
        with _transaction(self.db):
            self.db.execute(
                f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES ({_CALL_PLACEHOLDERS})",  # noqa: S608
                _call_row(call),
            )
            if idempotency is not None:
                key, remembered = idempotency
                self.db.execute(
                    "INSERT INTO idempotency_keys (account_sid, idempotency_key, request_hash, "
                    "call_sid, response, date_created) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        call.account_sid,
                        key,
                        remembered.request_hash,
                        remembered.call_sid,
                        remembered.response,
                        format_time(remembered.date_created),
                    ),
                )

    async def get_idempotent_create(
        self, account_sid: str, key: str, since: datetime
    ) -> IdempotentCreate | None:
        row = self._fetchone(
            "SELECT request_hash, call_sid, response, date_created FROM idempotency_keys "
            "WHERE account_sid = ? AND idempotency_key = ? AND date_created >= ?",
            (account_sid, key, format_time(since)),
        )
        if row is None:
            return None
        return IdempotentCreate(row[0], row[1], row[2], datetime.fromisoformat(row[3]))

    async def forget_idempotent_creates(self, before: datetime) -> int:
        return self._execute(
            "DELETE FROM idempotency_keys WHERE date_created < ?", (format_time(before),)
        )

    async def get_call(self, account_sid: str, call_sid: str) -> CallRecord | None:
        row = self._fetchone(
            f"SELECT {_CALL_COLUMNS} FROM calls "  # noqa: S608 - a constant column list
            "WHERE call_sid = ? AND account_sid = ?",
            (call_sid, account_sid),
        )
        return None if row is None else _call_from_row(row)

    async def list_calls(
        self,
        account_sid: str,
        where: CallFilter,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[CallRecord]:
        """Newest first; `after` is the (date_created, call_sid) of the last call already seen."""
        conditions = ["account_sid = ?"]
        params: list[Any] = [account_sid]
        for column, value in (
            ("status", where.status),
            ("direction", where.direction),
            ("from_number", where.from_),
            ("to_number", where.to),
        ):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if where.created_after is not None:
            conditions.append("date_created > ?")
            params.append(format_time(where.created_after))
        if where.created_before is not None:
            conditions.append("date_created < ?")
            params.append(format_time(where.created_before))
        if after is not None:
            conditions.append("(date_created < ? OR (date_created = ? AND call_sid < ?))")
            params += [format_time(after[0]), format_time(after[0]), after[1]]
        rows = self._fetchall(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE {' AND '.join(conditions)} "  # noqa: S608
            "ORDER BY date_created DESC, call_sid DESC LIMIT ?",
            (*params, limit),
        )
        return [_call_from_row(row) for row in rows]

    async def update_call(
        self, old: CallRecord, new: CallRecord, event: NewEvent | None = None
    ) -> bool:
        """Write `new` only if the stored call is still `old` (same version); add the event."""
        return self._update_call(old, new, event)

    @_unavailable
    def _update_call(self, old: CallRecord, new: CallRecord, event: NewEvent | None) -> bool:
        columns = _CALL_COLUMNS.replace(" ", "").split(",")
        values = dict(zip(columns, _call_row(new), strict=True))
        assignments = ", ".join(f"{column} = ?" for column in _MUTABLE)
        with _transaction(self.db):
            changed = self.db.execute(
                f"UPDATE calls SET {assignments}, version = version + 1 "  # noqa: S608
                "WHERE call_sid = ? AND version = ?",
                (*(values[column] for column in _MUTABLE), old.call_sid, old.version),
            ).rowcount
            if not changed:
                return False
            if event is not None:
                self.db.execute(
                    "INSERT INTO events (call_sid, account_sid, sequence, call_status, payload, "
                    "url, method, auth, state, attempts, next_attempt_at, date_created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (
                        new.call_sid,
                        new.account_sid,
                        new.event_count,
                        event.call_status,
                        _json(event.payload),
                        event.url,
                        event.method,
                        _auth_json(event.auth),
                        "pending" if event.url else "unsent",
                        _time(event.next_attempt_at) if event.url else None,
                        format_time(new.date_updated),
                    ),
                )
        return True

    async def delete_call(self, account_sid: str, call_sid: str) -> bool:
        return self._delete_call(account_sid, call_sid)

    @_unavailable
    def _delete_call(self, account_sid: str, call_sid: str) -> bool:
        with _transaction(self.db):
            deleted = self.db.execute(
                "DELETE FROM calls WHERE call_sid = ? AND account_sid = ?", (call_sid, account_sid)
            ).rowcount
            if deleted:
                # Pending events still go out; they are removed once delivered or given up.
                self.db.execute(
                    "DELETE FROM delivery_attempts WHERE event_id IN "
                    "(SELECT event_id FROM events WHERE call_sid = ? AND state != 'pending')",
                    (call_sid,),
                )
                self.db.execute(
                    "DELETE FROM events WHERE call_sid = ? AND state != 'pending'", (call_sid,)
                )
        return deleted > 0

    async def due_calls(self, now: datetime, limit: int) -> list[CallRecord]:
        rows = self._fetchall(
            f"SELECT {_CALL_COLUMNS} FROM calls "  # noqa: S608 - a constant column list
            "WHERE next_step_at IS NOT NULL AND next_step_at <= ? ORDER BY next_step_at LIMIT ?",
            (format_time(now), limit),
        )
        return [_call_from_row(row) for row in rows]

    async def next_due_time(self) -> datetime | None:
        """The earliest time any call or event has work due."""
        text = self._scalar(
            "SELECT MIN(t) FROM (SELECT MIN(next_step_at) AS t FROM calls "
            "UNION ALL SELECT MIN(next_attempt_at) FROM events WHERE state = 'pending')"
        )
        return _parse_time(text)

    # -- events --

    async def due_events(self, now: datetime, limit: int) -> list[EventRecord]:
        """Pending events that are due and have no earlier unfinished event of their call."""
        rows = self._fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events AS e "  # noqa: S608 - constant columns
            "WHERE e.state = 'pending' AND e.next_attempt_at <= ? AND NOT EXISTS ("
            "  SELECT 1 FROM events AS earlier WHERE earlier.call_sid = e.call_sid"
            "  AND earlier.sequence < e.sequence AND earlier.state = 'pending')"
            " ORDER BY e.next_attempt_at, e.event_id LIMIT ?",
            (format_time(now), limit),
        )
        return [_event_from_row(row) for row in rows]

    async def record_attempt(
        self,
        event: EventRecord,
        attempt: DeliveryAttempt,
        state: str,
        next_attempt_at: datetime | None,
    ) -> None:
        self._record_attempt(event, attempt, state, next_attempt_at)

    @_unavailable
    def _record_attempt(
        self,
        event: EventRecord,
        attempt: DeliveryAttempt,
        state: str,
        next_attempt_at: datetime | None,
    ) -> None:
        with _transaction(self.db):
            self.db.execute(
                "INSERT INTO delivery_attempts (event_id, attempted_at, http_status, error, "
                "latency_ms) VALUES (?, ?, ?, ?, ?)",
                (
                    event.event_id,
                    format_time(attempt.attempted_at),
                    attempt.http_status,
                    attempt.error,
                    attempt.latency_ms,
                ),
            )
            self.db.execute(
                "UPDATE events SET state = ?, attempts = attempts + 1, next_attempt_at = ?, "
                "delivered_at = ? WHERE event_id = ?",
                (
                    state,
                    _time(next_attempt_at),
                    format_time(attempt.attempted_at) if state == "delivered" else None,
                    event.event_id,
                ),
            )
            if state != "pending":
                # The last event of a deleted call leaves nothing behind once it is done.
                orphan = "NOT EXISTS (SELECT 1 FROM calls WHERE call_sid = ?)"
                self.db.execute(
                    f"DELETE FROM delivery_attempts WHERE event_id = ? AND {orphan}",  # noqa: S608
                    (event.event_id, event.call_sid),
                )
                self.db.execute(
                    f"DELETE FROM events WHERE event_id = ? AND {orphan}",  # noqa: S608
                    (event.event_id, event.call_sid),
                )

    async def list_events(self, account_sid: str, call_sid: str) -> list[EventRecord]:
        rows = self._fetchall(
            f"SELECT {_EVENT_COLUMNS} FROM events "  # noqa: S608 - a constant column list
            "WHERE call_sid = ? AND account_sid = ? ORDER BY sequence",
            (call_sid, account_sid),
        )
        attempts: dict[int, list[DeliveryAttempt]] = {}
        for row in self._fetchall(
            "SELECT a.event_id, a.attempted_at, a.http_status, a.error, a.latency_ms "
            "FROM delivery_attempts AS a JOIN events AS e ON e.event_id = a.event_id "
            "WHERE e.call_sid = ? ORDER BY a.attempt_id",
            (call_sid,),
        ):
            attempts.setdefault(row[0], []).append(
                DeliveryAttempt(datetime.fromisoformat(row[1]), row[2], row[3], row[4])
            )
        return [_event_from_row(row, tuple(attempts.get(row[0], ()))) for row in rows]


def _call_row(call: CallRecord) -> tuple[Any, ...]:
    columns = _CALL_COLUMNS.replace(" ", "").split(",")
    by_name = dict(zip(columns, (getattr(call, f.name) for f in fields(call)), strict=True))
    by_name["tag"] = _json(call.tag)
    by_name["headers"] = _json(call.headers)
    by_name["answer_auth"] = _auth_json(call.answer_auth)
    by_name["event_auth"] = _auth_json(call.event_auth)
    for column in ("date_created", "date_updated", "start_time", "end_time", "next_step_at"):
        by_name[column] = _time(by_name[column])
    return tuple(by_name[name] for name in columns)


def _call_from_row(row: tuple[Any, ...]) -> CallRecord:
    return CallRecord(
        call_sid=row[0],
        account_sid=row[1],
        from_=row[2],
        to=row[3],
        status=row[4],
        direction=row[5],
        answer_url=row[6],
        event_url=row[7],
        event_method=row[8],
        timeout=row[9],
        time_limit=row[10],
        tag=None if row[11] is None else json.loads(row[11]),
        headers=None if row[12] is None else json.loads(row[12]),
        date_created=datetime.fromisoformat(row[13]),
        date_updated=datetime.fromisoformat(row[14]),
        start_time=_parse_time(row[15]),
        end_time=_parse_time(row[16]),
        duration=row[17],
        answer_method=row[18],
        answer_auth=_auth(row[19]),
        event_auth=_auth(row[20]),
        sip_status=row[21],
        sip_reason=row[22],
        failure_reason=row[23],
        next_step=row[24],
        next_step_at=_parse_time(row[25]),
        event_count=row[26],
        version=row[27],
    )


def _event_from_row(row: tuple[Any, ...], history: tuple[DeliveryAttempt, ...] = ()) -> EventRecord:
    return EventRecord(
        event_id=row[0],
        call_sid=row[1],
        account_sid=row[2],
        sequence=row[3],
        call_status=row[4],
        payload=json.loads(row[5]),
        url=row[6],
        method=row[7],
        auth=_auth(row[8]),
        state=row[9],
        attempts=row[10],
        next_attempt_at=_parse_time(row[11]),
        date_created=datetime.fromisoformat(row[12]),
        delivered_at=_parse_time(row[13]),
        history=history,
    )


def _migrate(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        with _transaction(db):
            for statement in migration.statements:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, format_time(datetime.now(UTC))),
            )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (on SQLITE_FULL, for one); a ROLLBACK then
        # would fail and hide the real error. A failed COMMIT must not leave it open either.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
