"""The SQL both backends share. Each backend says how to run a statement, how it keeps a
time, and how it locks rows it claims; the queries themselves are written once, with `?`
placeholders."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from calls_api.store import IdempotencyConflict
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

T = TypeVar("T")

# Column order matches CallRecord's fields.
CALL_COLUMNS = (
    "call_sid, account_sid, from_number, to_number, status, direction, answer_url, event_url, "
    "event_method, timeout, time_limit, tag, headers, date_created, date_updated, start_time, "
    "end_time, duration, answer_method, answer_auth, event_auth, sip_status, sip_reason, "
    "failure_reason, next_step, next_step_at, event_count, version"
)
_CALL_NAMES = tuple(CALL_COLUMNS.replace(" ", "").split(","))
_CALL_PLACEHOLDERS = ", ".join("?" for _ in _CALL_NAMES)
_CALL_TIMES = ("date_created", "date_updated", "start_time", "end_time", "next_step_at")
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
EVENT_COLUMNS = (
    "event_id, call_sid, account_sid, sequence, call_status, payload, url, method, auth, state, "
    "attempts, next_attempt_at, date_created, delivered_at"
)
# An event may go out only when no earlier event of its call is still pending.
_FIRST_UNFINISHED = (
    "NOT EXISTS (SELECT 1 FROM events AS earlier WHERE earlier.call_sid = e.call_sid"
    " AND earlier.sequence < e.sequence AND earlier.state = 'pending')"
)
# Free: never claimed, or the claim's lease ran out (its holder died or hangs).
_UNLEASED = "(lease_until IS NULL OR lease_until <= ?)"


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _auth_json(auth: HookAuth | None) -> str | None:
    return None if auth is None else _json({"username": auth.username, "password": auth.password})


def _auth(text: str | None) -> HookAuth | None:
    return None if text is None else HookAuth(**json.loads(text))


class Transaction(Protocol):
    """Statements run in one transaction."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; how many rows it changed."""

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a query; its rows."""


class SQLStore(ABC):
    """The Store's operations in SQL common to SQLite and PostgreSQL."""

    # Appended to the SELECT that picks rows to claim: PostgreSQL locks them and skips rows
    # another instance is claiming; SQLite's write transaction already excludes everyone.
    claim_lock = ""

    # -- what each backend provides --

    @abstractmethod
    async def run(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """`work` in one transaction, committed when it returns; every failure to reach the
        database (in time) becomes StoreUnavailable."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One query outside any explicit transaction."""

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement outside any explicit transaction; rows changed."""

    @abstractmethod
    def time_param(self, moment: datetime) -> Any:
        """A time as the database keeps it."""

    @abstractmethod
    def time_value(self, stored: Any) -> datetime:
        """A time the database returned, in UTC."""

    @abstractmethod
    def is_unique_violation(self, exc: BaseException) -> bool:
        """Whether `exc` is the database refusing a duplicate key."""

    # -- helpers --

    def _t(self, moment: datetime | None) -> Any:
        return None if moment is None else self.time_param(moment)

    def _pt(self, stored: Any) -> datetime | None:
        return None if stored is None else self.time_value(stored)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = await self.fetchone(sql, params)
        return None if row is None else row[0]

    # -- health --

    async def ping(self) -> None:
        await self.scalar("SELECT 1")

    async def schema_version(self) -> int:
        return int(await self.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))

    # -- accounts and keys --

    async def count_accounts(self) -> int:
        return int(await self.scalar("SELECT COUNT(*) FROM accounts"))

    async def create_account(self, account: Account) -> None:
        await self.execute(
            "INSERT INTO accounts (account_sid, name, date_created, webhook_secret) "
            "VALUES (?, ?, ?, ?)",
            (
                account.account_sid,
                account.name,
                self.time_param(account.date_created),
                account.webhook_secret,
            ),
        )

    async def get_account(self, account_sid: str) -> Account | None:
        row = await self.fetchone(
            "SELECT account_sid, name, date_created, webhook_secret FROM accounts "
            "WHERE account_sid = ?",
            (account_sid,),
        )
        if row is None:
            return None
        return Account(row[0], row[1], self.time_value(row[2]), row[3])

    async def set_webhook_secret(self, account_sid: str, secret: str) -> bool:
        changed = await self.execute(
            "UPDATE accounts SET webhook_secret = ? WHERE account_sid = ?", (secret, account_sid)
        )
        return changed > 0

    async def add_api_key(self, key: ApiKey) -> None:
        await self.execute(
            "INSERT INTO api_keys (prefix, account_sid, key_hash, date_created) "
            "VALUES (?, ?, ?, ?)",
            (key.prefix, key.account_sid, key.key_hash, self.time_param(key.date_created)),
        )

    async def get_api_key(self, prefix: str) -> ApiKey | None:
        row = await self.fetchone(
            "SELECT prefix, account_sid, key_hash, date_created, revoked_at "
            "FROM api_keys WHERE prefix = ?",
            (prefix,),
        )
        if row is None:
            return None
        return ApiKey(row[0], row[1], row[2], self.time_value(row[3]), self._pt(row[4]))

    async def revoke_api_key(self, prefix: str) -> bool:
        changed = await self.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE prefix = ? AND revoked_at IS NULL",
            (self.time_param(datetime.now(UTC)), prefix),
        )
        return changed > 0

    # -- calls --

    async def create_call(
        self, call: CallRecord, idempotency: tuple[str, IdempotentCreate] | None = None
    ) -> None:
        try:

            async def work(tx: Transaction) -> None:
                await tx.execute(
                    f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({_CALL_PLACEHOLDERS})",  # noqa: S608
                    self._call_row(call),
                )
                if idempotency is not None:
                    key, remembered = idempotency
                    await tx.execute(
                        "INSERT INTO idempotency_keys (account_sid, idempotency_key, "
                        "request_hash, call_sid, response, date_created) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            call.account_sid,
                            key,
                            remembered.request_hash,
                            remembered.call_sid,
                            remembered.response,
                            self.time_param(remembered.date_created),
                        ),
                    )

            await self.run(work)
        except Exception as exc:
            if (
                idempotency is not None
                and self.is_unique_violation(exc)
                and "idempotency_keys" in str(exc)
            ):
                raise IdempotencyConflict(idempotency[0]) from exc
            raise

    async def get_idempotent_create(
        self, account_sid: str, key: str, since: datetime
    ) -> IdempotentCreate | None:
        row = await self.fetchone(
            "SELECT request_hash, call_sid, response, date_created FROM idempotency_keys "
            "WHERE account_sid = ? AND idempotency_key = ? AND date_created >= ?",
            (account_sid, key, self.time_param(since)),
        )
        if row is None:
            return None
        return IdempotentCreate(row[0], row[1], row[2], self.time_value(row[3]))

    async def forget_idempotent_creates(self, before: datetime) -> int:
        return await self.execute(
            "DELETE FROM idempotency_keys WHERE date_created < ?", (self.time_param(before),)
        )

    async def get_call(self, account_sid: str, call_sid: str) -> CallRecord | None:
        row = await self.fetchone(
            f"SELECT {CALL_COLUMNS} FROM calls "  # noqa: S608 - a constant column list
            "WHERE call_sid = ? AND account_sid = ?",
            (call_sid, account_sid),
        )
        return None if row is None else self._call_from_row(row)

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
            params.append(self.time_param(where.created_after))
        if where.created_before is not None:
            conditions.append("date_created < ?")
            params.append(self.time_param(where.created_before))
        if after is not None:
            conditions.append("(date_created < ? OR (date_created = ? AND call_sid < ?))")
            params += [self.time_param(after[0]), self.time_param(after[0]), after[1]]
        rows = await self.fetchall(
            f"SELECT {CALL_COLUMNS} FROM calls WHERE {' AND '.join(conditions)} "  # noqa: S608
            "ORDER BY date_created DESC, call_sid DESC LIMIT ?",
            (*params, limit),
        )
        return [self._call_from_row(row) for row in rows]

    async def update_call(
        self, old: CallRecord, new: CallRecord, event: NewEvent | None = None, *, hold: bool = False
    ) -> bool:
        """Write `new` only if the stored call is still `old` (same version); add the event.

        The write gives up any claim on the call's next step, unless `hold`: the engine keeps
        its claim when it goes straight on with the next step itself.
        """
        values = dict(zip(_CALL_NAMES, self._call_row(new), strict=True))
        assignments = ", ".join(f"{column} = ?" for column in _MUTABLE)
        release = "" if hold else ", claimed_by = NULL, lease_until = NULL"

        async def work(tx: Transaction) -> bool:
            changed = await tx.execute(
                f"UPDATE calls SET {assignments}, version = version + 1{release} "  # noqa: S608
                "WHERE call_sid = ? AND version = ?",
                (*(values[column] for column in _MUTABLE), old.call_sid, old.version),
            )
            if not changed:
                return False
            if event is not None:
                await tx.execute(
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
                        self._t(event.next_attempt_at) if event.url else None,
                        self.time_param(new.date_updated),
                    ),
                )
            return True

        return await self.run(work)

    async def delete_call(self, account_sid: str, call_sid: str) -> bool:
        async def work(tx: Transaction) -> bool:
            deleted = await tx.execute(
                "DELETE FROM calls WHERE call_sid = ? AND account_sid = ?", (call_sid, account_sid)
            )
            if deleted:
                # Pending events still go out; they are removed once delivered or given up.
                await tx.execute(
                    "DELETE FROM delivery_attempts WHERE event_id IN "
                    "(SELECT event_id FROM events WHERE call_sid = ? AND state != 'pending')",
                    (call_sid,),
                )
                await tx.execute(
                    "DELETE FROM events WHERE call_sid = ? AND state != 'pending'", (call_sid,)
                )
            return deleted > 0

        return await self.run(work)

    # -- the engine's work, claimed so that one instance does each step --

    async def claim_due_calls(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[CallRecord]:
        """Calls whose next step is due and that no live claim holds; they are now `owner`'s
        until `lease_until` (or until their next write)."""
        at = self.time_param(now)

        async def work(tx: Transaction) -> list[tuple[Any, ...]]:
            return await tx.fetchall(
                "WITH due AS (SELECT call_sid FROM calls "  # noqa: S608 - constant text
                f"WHERE next_step_at <= ? AND {_UNLEASED} "
                f"ORDER BY next_step_at LIMIT ?{self.claim_lock}) "
                "UPDATE calls SET claimed_by = ?, lease_until = ? "
                "WHERE call_sid IN (SELECT call_sid FROM due) "
                f"RETURNING {CALL_COLUMNS}",
                (at, at, limit, owner, self.time_param(lease_until)),
            )

        rows = await self.run(work)
        calls = [self._call_from_row(row) for row in rows]
        return sorted(calls, key=lambda c: (c.next_step_at or now, c.call_sid))

    async def claim_due_events(
        self, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[EventRecord]:
        """Pending events that are due, that no live claim holds, and that are the earliest
        unfinished event of their call; they are now `owner`'s until `lease_until`."""
        at = self.time_param(now)

        async def work(tx: Transaction) -> list[tuple[Any, ...]]:
            return await tx.fetchall(
                "WITH due AS (SELECT e.event_id FROM events AS e "  # noqa: S608 - constant text
                "WHERE e.state = 'pending' AND e.next_attempt_at <= ? "
                "AND (e.lease_until IS NULL OR e.lease_until <= ?) "
                f"AND {_FIRST_UNFINISHED} "
                f"ORDER BY e.next_attempt_at, e.event_id LIMIT ?{self.claim_lock}) "
                "UPDATE events SET claimed_by = ?, lease_until = ? "
                "WHERE event_id IN (SELECT event_id FROM due) "
                f"RETURNING {EVENT_COLUMNS}",
                (at, at, limit, owner, self.time_param(lease_until)),
            )

        rows = await self.run(work)
        events = [self._event_from_row(row) for row in rows]
        return sorted(events, key=lambda e: (e.next_attempt_at or now, e.event_id))

    async def release_claims(self, owner: str) -> None:
        """Give up every claim `owner` still holds (at shutdown), so others go on at once."""

        async def work(tx: Transaction) -> None:
            for table in ("calls", "events"):
                await tx.execute(
                    f"UPDATE {table} SET claimed_by = NULL, lease_until = NULL "  # noqa: S608
                    "WHERE claimed_by = ?",
                    (owner,),
                )

        await self.run(work)

    async def next_due_time(self) -> datetime | None:
        """The earliest time any call step or event delivery can be claimed."""
        stored = await self.scalar(
            "SELECT MIN(t) FROM ("  # noqa: S608 - constant text
            "SELECT MIN(CASE WHEN lease_until > next_step_at THEN lease_until "
            "ELSE next_step_at END) AS t FROM calls WHERE next_step_at IS NOT NULL "
            "UNION ALL "
            "SELECT MIN(CASE WHEN e.lease_until > e.next_attempt_at THEN e.lease_until "
            "ELSE e.next_attempt_at END) FROM events AS e "
            f"WHERE e.state = 'pending' AND {_FIRST_UNFINISHED}) AS due_times"
        )
        return self._pt(stored)

    # -- events --

    async def record_attempt(
        self,
        event: EventRecord,
        attempt: DeliveryAttempt,
        state: str,
        next_attempt_at: datetime | None,
        owner: str | None = None,
    ) -> bool:
        """Record a delivery attempt and the event's new state, and give up the claim.

        With `owner`, only while that claim still holds the event: False (nothing written)
        when it was lost, because another instance took the event over.
        """
        held = "" if owner is None else " AND claimed_by = ?"

        async def work(tx: Transaction) -> bool:
            changed = await tx.execute(
                "UPDATE events SET state = ?, attempts = attempts + 1, "  # noqa: S608
                "next_attempt_at = ?, delivered_at = ?, claimed_by = NULL, lease_until = NULL "
                f"WHERE event_id = ? AND state = 'pending'{held}",
                (
                    state,
                    self._t(next_attempt_at),
                    self.time_param(attempt.attempted_at) if state == "delivered" else None,
                    event.event_id,
                    *(() if owner is None else (owner,)),
                ),
            )
            if not changed:
                return False
            await tx.execute(
                "INSERT INTO delivery_attempts (event_id, attempted_at, http_status, error, "
                "latency_ms) VALUES (?, ?, ?, ?, ?)",
                (
                    event.event_id,
                    self.time_param(attempt.attempted_at),
                    attempt.http_status,
                    attempt.error,
                    attempt.latency_ms,
                ),
            )
            if state != "pending":
                # The last event of a deleted call leaves nothing behind once it is done.
                orphan = "NOT EXISTS (SELECT 1 FROM calls WHERE call_sid = ?)"
                await tx.execute(
                    f"DELETE FROM delivery_attempts WHERE event_id = ? AND {orphan}",  # noqa: S608
                    (event.event_id, event.call_sid),
                )
                await tx.execute(
                    f"DELETE FROM events WHERE event_id = ? AND {orphan}",  # noqa: S608
                    (event.event_id, event.call_sid),
                )
            return True

        return await self.run(work)

    async def list_events(self, account_sid: str, call_sid: str) -> list[EventRecord]:
        rows = await self.fetchall(
            f"SELECT {EVENT_COLUMNS} FROM events "  # noqa: S608 - a constant column list
            "WHERE call_sid = ? AND account_sid = ? ORDER BY sequence",
            (call_sid, account_sid),
        )
        attempts: dict[int, list[DeliveryAttempt]] = {}
        for row in await self.fetchall(
            "SELECT a.event_id, a.attempted_at, a.http_status, a.error, a.latency_ms "
            "FROM delivery_attempts AS a JOIN events AS e ON e.event_id = a.event_id "
            "WHERE e.call_sid = ? ORDER BY a.attempt_id",
            (call_sid,),
        ):
            attempts.setdefault(row[0], []).append(
                DeliveryAttempt(self.time_value(row[1]), row[2], row[3], row[4])
            )
        return [self._event_from_row(row, tuple(attempts.get(row[0], ()))) for row in rows]

    # -- rows --

    def _call_row(self, call: CallRecord) -> tuple[Any, ...]:
        by_name = dict(zip(_CALL_NAMES, (getattr(call, f.name) for f in fields(call)), strict=True))
        by_name["tag"] = _json(call.tag)
        by_name["headers"] = _json(call.headers)
        by_name["answer_auth"] = _auth_json(call.answer_auth)
        by_name["event_auth"] = _auth_json(call.event_auth)
        for column in _CALL_TIMES:
            by_name[column] = self._t(by_name[column])
        return tuple(by_name[name] for name in _CALL_NAMES)

    def _call_from_row(self, row: Sequence[Any]) -> CallRecord:
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
            date_created=self.time_value(row[13]),
            date_updated=self.time_value(row[14]),
            start_time=self._pt(row[15]),
            end_time=self._pt(row[16]),
            duration=row[17],
            answer_method=row[18],
            answer_auth=_auth(row[19]),
            event_auth=_auth(row[20]),
            sip_status=row[21],
            sip_reason=row[22],
            failure_reason=row[23],
            next_step=row[24],
            next_step_at=self._pt(row[25]),
            event_count=row[26],
            version=row[27],
        )

    def _event_from_row(
        self, row: Sequence[Any], history: tuple[DeliveryAttempt, ...] = ()
    ) -> EventRecord:
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
            next_attempt_at=self._pt(row[11]),
            date_created=self.time_value(row[12]),
            delivered_at=self._pt(row[13]),
            history=history,
        )
