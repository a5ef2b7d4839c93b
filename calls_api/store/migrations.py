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
)

LATEST_VERSION = MIGRATIONS[-1].version
