"""`calls-api`: serve the API, generate code, and manage accounts and API keys."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from calls_api.settings import Settings

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """Open the configured store, run one piece of work on it, close it."""
    from calls_api.store import StoreUnavailable, open_store

    async def run() -> T:
        store = open_store(settings.database_url, timeout=settings.database_timeout)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    from calls_api.admin import UnknownAccount

    try:
        return asyncio.run(run())
    except (StoreUnavailable, UnknownAccount, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the flags that were given on top."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from exc


@click.group()
def main() -> None:
    """The jambonz Calls API, served from spec/openapi.yaml."""


@main.command()
@click.option("--host", help="Interface to listen on [env CALLS_HOST, default 127.0.0.1]")
@click.option("--port", type=int, help="TCP port [env CALLS_PORT, default 8000]")
@click.option("--database-url", help="Database URL [env CALLS_DATABASE_URL]")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    help="Log level [env CALLS_LOG_LEVEL, default info]",
)
@click.option(
    "--allow-private-webhooks/--no-allow-private-webhooks",
    default=None,
    help="Allow hooks on loopback and private addresses [env CALLS_ALLOW_PRIVATE_WEBHOOKS]",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    help="Service processes on the one port, each with its own connections and engine "
    "[env CALLS_WORKERS, default 1]",
)
def serve(
    host: str | None,
    port: int | None,
    database_url: str | None,
    log_level: str | None,
    allow_private_webhooks: bool | None,
    workers: int | None,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from calls_api.access_log import configure_logging
    from calls_api.admin import bootstrap_dev_account
    from calls_api.app import create_app

    flags = {
        "host": host,
        "port": port,
        "database_url": database_url,
        "log_level": log_level,
        "allow_private_webhooks": allow_private_webhooks,
        "workers": workers,
    }
    settings = _settings(**flags)
    configure_logging(settings.log_level)
    created = _with_store(settings, bootstrap_dev_account)
    base = f"http://{_url_host(settings.host)}:{settings.port}/v1"
    if created:
        account, key = created
        _print_dev_banner(base, account.account_sid, key.secret, account.webhook_secret)
    click.echo(f"Serving the Calls API at {base} (Swagger UI at {base}/ui/)", err=True)
    click.echo(
        "Calls are simulated: no real call is placed (see the README's test destinations).",
        err=True,
    )
    if settings.allow_private_webhooks:
        click.echo(
            "CALLS_ALLOW_PRIVATE_WEBHOOKS is on: answer_url and event_url may point at "
            "loopback and private addresses (local development only).",
            err=True,
        )
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=False,  # calls_api.access logs one line per request instead
        )
        return
    # Each worker is a process of its own that builds the app from the environment: the
    # flags given here go there too. Every worker opens its own database connections and
    # runs its own engine; claims on the database share the work out among them.
    for name, value in flags.items():
        if value is not None:
            os.environ[f"CALLS_{name.upper()}"] = (
                str(value).lower() if name.startswith("allow_") else str(value)
            )
    click.echo(f"Running {settings.workers} worker processes.", err=True)
    uvicorn.run(
        "calls_api.cli:app_from_environment",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


def app_from_environment() -> Any:
    """The app of one worker process of `serve --workers N`, configured from CALLS_*."""
    from calls_api.access_log import configure_logging
    from calls_api.app import create_app

    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):  # noqa: S104 - naming the wildcard, not binding to it
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _print_dev_banner(base: str, account_sid: str, key: str, webhook_secret: str) -> None:
    body = json.dumps(
        {
            "from": "+15550000000",
            "to": "+15550000001",
            "answer_url": "https://example.com/answer",
            "event_url": "https://example.com/events",
            "event_method": "POST",
        }
    )
    click.echo(
        f"""
The database was empty: created a development account and API key.
The key and the webhook secret are shown only this once; keep them.

  account_sid:    {account_sid}
  api_key:        {key}
  webhook_secret: {webhook_secret}  (verifies the Jambonz-Signature of status events)

Create a call:
  curl -s -X POST {base}/Accounts/{account_sid}/Calls \\
    -H 'Authorization: Bearer {key}' \\
    -H 'Content-Type: application/json' \\
    -d '{body}'

Retrieve it (use the call_sid from the answer):
  curl -s {base}/Accounts/{account_sid}/Calls/CALL_SID \\
    -H 'Authorization: Bearer {key}'
""",
        err=True,
    )


@main.command()
@click.option("--check", is_flag=True, help="Fail when generated/ is out of date.")
@click.option("--force", is_flag=True, help="Regenerate even when up to date.")
def generate(check: bool, force: bool) -> None:
    """Regenerate models, the handler contract and adapters from spec/openapi.yaml."""
    from calls_api.codegen.__main__ import run

    sys.exit(run(Path.cwd(), check_only=check, force=force))


@main.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.option("--name", default="default", show_default=True, help="A name for the account.")
@click.option("--json", "as_json", is_flag=True, help="Print {account_sid, api_key} as JSON.")
def accounts_create(name: str, as_json: bool) -> None:
    """Create an account and its first API key; the key is printed only once."""
    from calls_api.admin import create_account

    account, key = _with_store(_settings(), lambda store: create_account(store, name))
    if as_json:
        click.echo(json.dumps({"account_sid": account.account_sid, "api_key": key.secret}))
        click.echo(f"webhook_secret: {account.webhook_secret}", err=True)
    else:
        click.echo(f"account_sid:    {account.account_sid}")
        click.echo(f"api_key:        {key.secret}")
        click.echo(f"webhook_secret: {account.webhook_secret}")
        click.echo("The key and the secret are shown only this once; keep them.", err=True)


@accounts.command("rotate-secret")
@click.argument("account_sid")
@click.option("--json", "as_json", is_flag=True, help="Print {account_sid, webhook_secret}.")
def accounts_rotate_secret(account_sid: str, as_json: bool) -> None:
    """Give ACCOUNT_SID a new webhook secret; events are signed with it from now on."""
    from calls_api.admin import rotate_webhook_secret

    secret = _with_store(_settings(), lambda store: rotate_webhook_secret(store, account_sid))
    if as_json:
        click.echo(json.dumps({"account_sid": account_sid, "webhook_secret": secret}))
    else:
        click.echo(f"webhook_secret: {secret}")


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.argument("account_sid")
@click.option("--json", "as_json", is_flag=True, help="Print {account_sid, api_key} as JSON.")
def keys_create(account_sid: str, as_json: bool) -> None:
    """Create another API key for ACCOUNT_SID; it is printed only once."""
    from calls_api.admin import create_key

    key = _with_store(_settings(), lambda store: create_key(store, account_sid))
    if as_json:
        click.echo(json.dumps({"account_sid": account_sid, "api_key": key.secret}))
    else:
        click.echo(f"api_key: {key.secret}")
        click.echo("The key is shown only this once; keep it.", err=True)


@keys.command("revoke")
@click.argument("key_prefix")
def keys_revoke(key_prefix: str) -> None:
    """Revoke the API key whose prefix (the part before the dot) is KEY_PREFIX."""
    from calls_api.admin import revoke_key

    if not _with_store(_settings(), lambda store: revoke_key(store, key_prefix)):
        raise click.ClickException(f"no active API key with prefix {key_prefix}")
    click.echo(f"revoked {key_prefix}")
