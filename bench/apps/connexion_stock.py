"""(d) Stock connexion on the same spec: its default validators, security handler (the key
check named by BEARERINFO_FUNC), parameter passing and JSON encoder; handlers return
(dict, status, headers) as connexion's documentation shows."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from connexion import AsyncApp
from connexion.resolver import Resolver

from bench.apps.common import lifespan_of, make_services
from calls_api.app import SPEC_PATH
from calls_api.context import AccountContext
from calls_api.problems import Forbidden, Problem
from generated import models
from handlers import calls
from handlers.security import authenticate

services = make_services()


async def bearer_info(token: str) -> dict[str, Any] | None:
    return await authenticate(services.store, token)


def _context(token_info: dict[str, Any], account_sid: str) -> AccountContext:
    if token_info["sub"] != account_sid:
        raise Forbidden(f"This API key may not act for account {account_sid}")
    return AccountContext(
        services=services, account_sid=token_info["sub"], key_prefix=token_info["key_prefix"]
    )


JSON = {"Content-Type": "application/json"}


def _problem(problem: Problem) -> tuple[Any, ...]:
    body = {"title": problem.title, "status": problem.status, "detail": problem.detail}
    return body, problem.status, {"Content-Type": "application/problem+json"}


async def create_call(
    account_sid: str, body: dict[str, Any], token_info: dict[str, Any]
) -> tuple[Any, ...]:
    try:
        ctx = _context(token_info, account_sid)
        result = await calls.create_call(
            ctx, account_sid=account_sid, body=models.CallCreate.model_validate(body)
        )
    except Problem as problem:
        return _problem(problem)
    return (
        result.body.model_dump(mode="json", by_alias=True),
        201,
        {**JSON, "Location": result.location},
    )


async def get_call(account_sid: str, call_sid: str, token_info: dict[str, Any]) -> Any:
    try:
        result = await calls.get_call(_context(token_info, account_sid), account_sid, call_sid)
    except Problem as problem:
        return _problem(problem)
    return result.body.model_dump(mode="json", by_alias=True), 200, JSON


async def not_benchmarked(**_kwargs: Any) -> tuple[Any, ...]:
    return {"title": "Not Implemented", "status": 501}, 501, JSON


_OPERATIONS: dict[str, Callable[..., Any]] = {"createCall": create_call, "getCall": get_call}


def _resolve(operation_id: str) -> Callable[..., Any]:
    return _OPERATIONS.get(operation_id, not_benchmarked)


os.environ.setdefault("BEARERINFO_FUNC", f"{__name__}.bearer_info")
app = AsyncApp(__name__, lifespan=lambda _app: lifespan_of(services))
app.add_api(SPEC_PATH, resolver=Resolver(function_resolver=_resolve))
