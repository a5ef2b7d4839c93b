"""What the generated adapters call: the only code that knows connexion's request context.

Handlers never see any of this: they get typed models and a Context, and return results.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response

from calls_api.context import AccountContext, Context
from calls_api.fastpath import current_scope
from calls_api.problems import BadRequest, Forbidden, Unauthorized
from calls_api.results import Accepted, Created, NoContent, Ok
from calls_api.services import Services

M = TypeVar("M", bound=BaseModel)

SERVICES_KEY = "calls_api.services"


def services_from_scope(scope: Any) -> Services:
    """The Services the app put into the ASGI scope state."""
    services: Services = scope["state"][SERVICES_KEY]
    return services


def context() -> Context:
    """The context of an unauthenticated operation."""
    return Context(services=services_from_scope(current_scope()))


def account_context(token_info: dict[str, Any] | None, account_sid: str | None) -> AccountContext:
    """The context of an authenticated operation; 403 when the key is another account's."""
    if not token_info or "sub" not in token_info:
        raise Unauthorized("No valid API key was provided")
    principal_account: str = token_info["sub"]
    if account_sid is not None and account_sid != principal_account:
        raise Forbidden(f"This API key may not act for account {account_sid}")
    return AccountContext(
        services=services_from_scope(current_scope()),
        account_sid=principal_account,
        key_prefix=str(token_info.get("key_prefix", "")),
    )


def header(name: str) -> str | None:
    """A request header the spec declares as a parameter (connexion validated it)."""
    value: str | None = Headers(scope=current_scope()).get(name)
    return value


def parse_body(model: type[M], body: Any, *, required: bool = True) -> M:
    """The validated request body as its generated model; 400 for what the schema let by."""
    if body is None and required:
        raise BadRequest("A JSON request body is required")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    """One readable sentence per error, naming the field."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _dump(body: Any) -> bytes:
    if isinstance(body, BaseModel):
        return body.model_dump_json(by_alias=True).encode()
    if isinstance(body, list):
        return b"[" + b",".join(_dump(item) for item in body) + b"]"
    return orjson.dumps(body)


def respond(result: Ok[Any] | Created[Any] | Accepted[Any] | NoContent, status: int) -> Response:
    """The HTTP response the spec declares for a handler's result."""
    headers = dict(result.headers)
    if isinstance(result, NoContent):
        return Response(status_code=status, headers=headers)
    if isinstance(result, Created):
        headers["Location"] = result.location
    return Response(
        content=_dump(result.body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )
