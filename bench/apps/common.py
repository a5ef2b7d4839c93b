"""What every comparison app shares with the service: settings, services, auth, handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from calls_api.context import AccountContext
from calls_api.errors import problem_document
from calls_api.problems import BadRequest, Forbidden, Problem, Unauthorized
from calls_api.services import Services
from calls_api.settings import Settings
from handlers.security import authenticate

PROBLEM_JSON = "application/problem+json"


def make_services() -> Services:
    """Services from the CALLS_* environment, as the service builds them."""
    return Services(Settings())


@asynccontextmanager
async def lifespan_of(services: Services) -> AsyncIterator[None]:
    """Start the store and engine with the app, stop them with it."""
    await services.start()
    try:
        yield
    finally:
        await services.stop()


def problem_parts(problem: Problem, path: str) -> tuple[bytes, int, dict[str, str]]:
    """Body, status and headers of the service's problem document for `problem`."""
    headers = dict(problem.headers)
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return (
        problem_document(problem.status, problem.detail, path, problem.title),
        problem.status,
        headers,
    )


async def account_context(
    services: Services, authorization: str | None, account_sid: str
) -> AccountContext:
    """The same check as the service: a valid key, and of the account in the path."""
    token = None
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value:
            token = value
    info = await authenticate(services.store, token) if token is not None else None
    if info is None:
        raise Unauthorized("No valid API key was provided")
    if info["sub"] != account_sid:
        raise Forbidden(f"This API key may not act for account {account_sid}")
    return AccountContext(
        services=services, account_sid=info["sub"], key_prefix=str(info["key_prefix"])
    )


def invalid_body(errors: Sequence[Any]) -> BadRequest:
    """pydantic's errors as one 400 problem."""
    return BadRequest(
        "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'body'}: {e.get('msg')}"
            for e in errors
        )
    )
