"""Versioned schema migrations, applied in order at start; never edit one that has shipped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

# The only differences between the dialects' schemas: the type names, written {time} etc. in
# the statements below. SQLite keeps times as fixed-width UTC text, so text order is time order.
TYPES: Mapping[Dialect, Mapping[str, str]] = {
    "sqlite": {
        "time": "TEXT",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "id": "INTEGER",
        "real": "REAL",
    },
    "postgresql": {
        "time": "TIMESTAMPTZ",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "id": "BIGINT",
        "real": "DOUBLE PRECISION",
    },
}

# A statement that is the same in both dialects but for TYPES, or one text per dialect.
Statement = str | Mapping[Dialect, str]


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, a name, and its statements, written once for both
    dialects so they cannot drift apart (a test checks both reach the same columns)."""

    version: int
    name: str
    steps: tuple[Statement, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return tuple(
            step.format_map(TYPES[dialect]) if isinstance(step, str) else step[dialect]
            for step in self.steps
        )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, api keys and calls",
        (
            """
            CREATE TABLE accounts (
                account_sid TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                date_created {time} NOT NULL
            )
            """,
            """
            CREATE TABLE api_keys (
                prefix TEXT PRIMARY KEY,
                account_sid TEXT NOT NULL REFERENCES accounts (account_sid),
                key_hash TEXT NOT NULL,
                date_created {time} NOT NULL,
                revoked_at {time}
            )
            """,
            """
            CREATE TABLE calls (
                call_sid TEXT PRIMARY KEY,
                account_sid TEXT NOT NULL REFERENCES accounts (account_sid),
                from_number TEXT NOT NULL,
                to_number TEXT NOT NULL,
                status TEXT NOT NULL,
                direction TEXT NOT NULL,
                answer_url TEXT NOT NULL,
                event_url TEXT,
                event_method TEXT NOT NULL,
                timeout INTEGER NOT NULL,
                time_limit INTEGER,
                tag TEXT,
                headers TEXT,
                date_created {time} NOT NULL,
                date_updated {time} NOT NULL,
                start_time {time},
                end_time {time},
                duration INTEGER
            )
            """,
            "CREATE INDEX calls_by_account ON calls (account_sid, date_created, call_sid)",
        ),
    ),
    Migration(
        2,
        "call lifecycle, webhook outbox, idempotency keys",
        (
            "ALTER TABLE accounts ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT ''",
            # Accounts made before webhooks existed get a secret of their own: 256 bits from
            # each database's strong random source.
            {
                "sqlite": "UPDATE accounts SET webhook_secret = lower(hex(randomblob(32))) "
                "WHERE webhook_secret = ''",
                "postgresql": "UPDATE accounts SET webhook_secret = encode(sha256(convert_to("
                "gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, "
                "'UTF8')), 'hex') WHERE webhook_secret = ''",
            },
            "ALTER TABLE calls ADD COLUMN answer_method TEXT NOT NULL DEFAULT 'POST'",
            "ALTER TABLE calls ADD COLUMN answer_auth TEXT",
            "ALTER TABLE calls ADD COLUMN event_auth TEXT",
            "ALTER TABLE calls ADD COLUMN sip_status INTEGER",
            "ALTER TABLE calls ADD COLUMN sip_reason TEXT",
            "ALTER TABLE calls ADD COLUMN failure_reason TEXT",
            "ALTER TABLE calls ADD COLUMN next_step TEXT",
            "ALTER TABLE calls ADD COLUMN next_step_at {time}",
            "ALTER TABLE calls ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE calls ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX calls_due ON calls (next_step_at)",
            """
            CREATE TABLE events (
                event_id {serial},
                call_sid TEXT NOT NULL,
                account_sid TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                call_status TEXT NOT NULL,
                payload TEXT NOT NULL,
                url TEXT,
                method TEXT NOT NULL,
                auth TEXT,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at {time},
                date_created {time} NOT NULL,
                delivered_at {time},
                UNIQUE (call_sid, sequence)
            )
            """,
            "CREATE INDEX events_due ON events (state, next_attempt_at)",
            """
            CREATE TABLE delivery_attempts (
                attempt_id {serial},
                event_id {id} NOT NULL,
                attempted_at {time} NOT NULL,
                http_status INTEGER,
                error TEXT,
                latency_ms {real} NOT NULL
            )
            """,
            "CREATE INDEX delivery_attempts_by_event ON delivery_attempts (event_id)",
            """
            CREATE TABLE idempotency_keys (
                account_sid TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                call_sid TEXT NOT NULL,
                response TEXT NOT NULL,
                date_created {time} NOT NULL,
                PRIMARY KEY (account_sid, idempotency_key)
            )
            """,
            "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (date_created)",
        ),
    ),
    Migration(
        3,
        "leases: which instance holds a call's next step or an event's delivery, and until when",
        (
            "ALTER TABLE calls ADD COLUMN claimed_by TEXT",
            "ALTER TABLE calls ADD COLUMN lease_until {time}",
            "ALTER TABLE events ADD COLUMN claimed_by TEXT",
            "ALTER TABLE events ADD COLUMN lease_until {time}",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
