"""Versioned schema migrations, applied in order at start; never edit one that has shipped."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, a name, and the statements that make it."""

    version: int
    name: str
    statements: tuple[str, ...]


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
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
