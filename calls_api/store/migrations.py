"""Versioned schema migrations, applied in order at start; never edit one that has shipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, a name, and the statements that make it in each dialect.

    Both dialects' statements for a version sit side by side, so they cannot drift apart:
    the same tables and columns, with the types each database has (TEXT times in SQLite,
    TIMESTAMPTZ in PostgreSQL). A test checks both reach the same columns.
    """

    version: int
    name: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgresql


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "accounts, api keys and calls",
        (
            """
            CREATE TABLE accounts (
                account_sid TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                date_created TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE api_keys (
                prefix TEXT PRIMARY KEY,
                account_sid TEXT NOT NULL REFERENCES accounts (account_sid),
                key_hash TEXT NOT NULL,
                date_created TEXT NOT NULL,
                revoked_at TEXT
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
                date_created TEXT NOT NULL,
                date_updated TEXT NOT NULL,
                start_time TEXT,
                end_time TEXT,
                duration INTEGER
            )
            """,
            "CREATE INDEX calls_by_account ON calls (account_sid, date_created, call_sid)",
        ),
        (
            """
            CREATE TABLE accounts (
                account_sid TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                date_created TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE api_keys (
                prefix TEXT PRIMARY KEY,
                account_sid TEXT NOT NULL REFERENCES accounts (account_sid),
                key_hash TEXT NOT NULL,
                date_created TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
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
                date_created TIMESTAMPTZ NOT NULL,
                date_updated TIMESTAMPTZ NOT NULL,
                start_time TIMESTAMPTZ,
                end_time TIMESTAMPTZ,
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
            # Accounts made before webhooks existed get a secret of their own.
            "UPDATE accounts SET webhook_secret = lower(hex(randomblob(32))) "
            "WHERE webhook_secret = ''",
            "ALTER TABLE calls ADD COLUMN answer_method TEXT NOT NULL DEFAULT 'POST'",
            "ALTER TABLE calls ADD COLUMN answer_auth TEXT",
            "ALTER TABLE calls ADD COLUMN event_auth TEXT",
            "ALTER TABLE calls ADD COLUMN sip_status INTEGER",
            "ALTER TABLE calls ADD COLUMN sip_reason TEXT",
            "ALTER TABLE calls ADD COLUMN failure_reason TEXT",
            "ALTER TABLE calls ADD COLUMN next_step TEXT",
            "ALTER TABLE calls ADD COLUMN next_step_at TEXT",
            "ALTER TABLE calls ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE calls ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX calls_due ON calls (next_step_at)",
            """
            CREATE TABLE events (
                event_id INTEGER PRIMARY KEY AUTOINCREMENT,
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
                next_attempt_at TEXT,
                date_created TEXT NOT NULL,
                delivered_at TEXT,
                UNIQUE (call_sid, sequence)
            )
            """,
            "CREATE INDEX events_due ON events (state, next_attempt_at)",
            """
            CREATE TABLE delivery_attempts (
                attempt_id INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id INTEGER NOT NULL,
                attempted_at TEXT NOT NULL,
                http_status INTEGER,
                error TEXT,
                latency_ms REAL NOT NULL
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
                date_created TEXT NOT NULL,
                PRIMARY KEY (account_sid, idempotency_key)
            )
            """,
            "CREATE INDEX idempotency_keys_by_age ON idempotency_keys (date_created)",
        ),
        (
            "ALTER TABLE accounts ADD COLUMN webhook_secret TEXT NOT NULL DEFAULT ''",
            # 256 bits from the server's strong random source (gen_random_uuid), hashed.
            "UPDATE accounts SET webhook_secret = encode(sha256(convert_to("
            "gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text, "
            "'UTF8')), 'hex') WHERE webhook_secret = ''",
            "ALTER TABLE calls ADD COLUMN answer_method TEXT NOT NULL DEFAULT 'POST'",
            "ALTER TABLE calls ADD COLUMN answer_auth TEXT",
            "ALTER TABLE calls ADD COLUMN event_auth TEXT",
            "ALTER TABLE calls ADD COLUMN sip_status INTEGER",
            "ALTER TABLE calls ADD COLUMN sip_reason TEXT",
            "ALTER TABLE calls ADD COLUMN failure_reason TEXT",
            "ALTER TABLE calls ADD COLUMN next_step TEXT",
            "ALTER TABLE calls ADD COLUMN next_step_at TIMESTAMPTZ",
            "ALTER TABLE calls ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE calls ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            "CREATE INDEX calls_due ON calls (next_step_at)",
            """
            CREATE TABLE events (
                event_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
                next_attempt_at TIMESTAMPTZ,
                date_created TIMESTAMPTZ NOT NULL,
                delivered_at TIMESTAMPTZ,
                UNIQUE (call_sid, sequence)
            )
            """,
            "CREATE INDEX events_due ON events (state, next_attempt_at)",
            """
            CREATE TABLE delivery_attempts (
                attempt_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                event_id BIGINT NOT NULL,
                attempted_at TIMESTAMPTZ NOT NULL,
                http_status INTEGER,
                error TEXT,
                latency_ms DOUBLE PRECISION NOT NULL
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
                date_created TIMESTAMPTZ NOT NULL,
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
            "ALTER TABLE calls ADD COLUMN lease_until TEXT",
            "ALTER TABLE events ADD COLUMN claimed_by TEXT",
            "ALTER TABLE events ADD COLUMN lease_until TEXT",
        ),
        (
            "ALTER TABLE calls ADD COLUMN claimed_by TEXT",
            "ALTER TABLE calls ADD COLUMN lease_until TIMESTAMPTZ",
            "ALTER TABLE events ADD COLUMN claimed_by TEXT",
            "ALTER TABLE events ADD COLUMN lease_until TIMESTAMPTZ",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
