"""The application: connexion serving spec/openapi.yaml, routed to the generated adapters."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from connexion import AsyncApp
from connexion.datastructures import MediaTypeDict
from connexion.decorators.parameter import pythonic
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from connexion.security import BearerSecurityHandler
from connexion.validators import VALIDATOR_MAP
from starlette.types import ASGIApp, Receive, Scope, Send

from calls_api import fastpath
from calls_api.access_log import AccessLogMiddleware
from calls_api.docs_page import docs_routes
from calls_api.errors import install_error_handlers
from calls_api.fastpath import CachedParameterValidator
from calls_api.fastpath.dispatch import KEY_CHECKED, CompiledDispatch
from calls_api.guards import BodyLimitMiddleware, SecurityHeadersMiddleware
from calls_api.routes import methods_for
from calls_api.runtime import SERVICES_KEY, services_from_scope
from calls_api.services import Services
from calls_api.settings import Settings
from calls_api.validation import RequestBodyValidator
from generated import adapters
from generated.contract import BASE_PATH
from handlers.security import authenticate

SPEC_PATH = Path(__file__).resolve().parent.parent / "spec" / "openapi.yaml"

# connexion's validators, with our JSON body validator (compiled once, clearer messages) and
# parameter validator (compiled once).
VALIDATORS = {
    **VALIDATOR_MAP,
    "parameter": CachedParameterValidator,
    "body": MediaTypeDict({**VALIDATOR_MAP["body"], "*/*json": RequestBodyValidator}),
}


class UnresolvedOperation(RuntimeError):
    """An operationId of the spec has no generated adapter: run make generate."""


def resolve_operation(operation_id: str) -> Callable[..., Any]:
    """The generated adapter for an operationId."""
    try:
        return adapters.OPERATIONS[operation_id]  # type: ignore[no-any-return]
    except KeyError:
        raise UnresolvedOperation(
            f"operationId {operation_id!r} has no adapter in generated/adapters.py: "
            "run `make generate`"
        ) from None


async def _bearer_info(token: str, request: Any) -> dict[str, Any] | None:
    checked = request.scope.get("extensions", {}).get(KEY_CHECKED)
    if checked is not None and checked[0] == token:
        # The compiled dispatch checked this request's key and counted it, then handed the
        # request on (its body failed a check): the same answer, counted once.
        return checked[1]  # type: ignore[no-any-return]
    # ServicesMiddleware has started the services before security runs.
    services = services_from_scope(request.scope)
    token_info = await authenticate(services.store, token)
    if token_info is not None and services.rate_limiter.enabled:
        # Who is calling is known only now: each key's and account's budget (429 past it).
        # The account is recorded first, so a refused request's log line names it too.
        request.context["user"] = token_info["sub"]
        await services.rate_limiter.check(token_info["sub"], token_info["key_prefix"])
    return token_info


class _ApiKeyBearer(BearerSecurityHandler):  # type: ignore[misc]
    """Bearer auth bound to our key check, with no spec extension naming a Python function."""

    def _resolve_func(self, security_scheme: dict[str, Any]) -> Callable[..., Any]:
        return _bearer_info


class ServicesMiddleware:
    """Puts the Services into every request's scope and starts them on first use."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})[SERVICES_KEY] = self.services
            if not self.services.started:
                await self.services.start()
        await self.app(scope, receive, send)


class TrailingSlashMiddleware:
    """Answers `/Calls/` as `/Calls` directly: jambonz's client lists calls with the slash,
    and follows no redirect. Only paths of the spec's operations are rewritten."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/") and methods_for(path[:-1]):
                scope = {**scope, "path": path[:-1]}
                if scope.get("raw_path"):
                    scope["raw_path"] = scope["raw_path"].rstrip(b"/")
        await self.app(scope, receive, send)


def dispatch_options(settings: Settings) -> dict[str, Any]:
    """How the compiled dispatch is built: from the spec, adapters, key check and validators
    connexion is given."""
    return {
        "spec_path": SPEC_PATH,
        "resolver": Resolver(function_resolver=resolve_operation),
        "adapters": adapters.OPERATIONS,
        "bearer": _bearer_info,
        "sanitize": pythonic,
        "validate_responses": settings.validate_responses,
        "validator_map": VALIDATORS,
    }


def create_app(settings: Settings | None = None, services: Services | None = None) -> AsyncApp:
    """Build the ASGI app. Every operationId is resolved here, so a gap fails at start."""
    settings = settings or Settings()
    services = services or Services(settings)
    for operation_id in adapters.ROUTES:
        resolve_operation(operation_id)
    fastpath.install()

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await services.start()
        # What the app holds for its lifetime is built by now (the parsed spec, validators,
        # connexion's chain): kept out of the garbage collector's full collections, which
        # otherwise walk all of it and stalled every request for ~50 ms a few times a minute
        # under load (README, Performance). Given back at shutdown.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            await services.stop()

    app = AsyncApp(
        __name__,
        lifespan=lifespan,
        security_map={"bearer": _ApiKeyBearer},
    )
    app.add_api(
        SPEC_PATH,
        validator_map=VALIDATORS,
        resolver=Resolver(function_resolver=resolve_operation),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        pythonic_params=True,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/ui"),
    )
    for path, endpoint, methods in docs_routes(BASE_PATH, settings.docs_page):
        app.add_url_rule(path, endpoint.__name__, endpoint, methods=list(methods))
    install_error_handlers(app)
    # Each is inserted just outside connexion's exception handling, the first outermost:
    # every request is logged, every answer (a 413 too) carries the security headers, and an
    # oversized body is refused before the services are even looked at.
    app.add_middleware(AccessLogMiddleware, MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(
        SecurityHeadersMiddleware,
        MiddlewarePosition.BEFORE_EXCEPTION,
        cacheable_prefixes=(f"{BASE_PATH}/ui/", f"{BASE_PATH}/docs/"),
    )
    app.add_middleware(
        BodyLimitMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, limit=settings.max_body_bytes
    )
    app.add_middleware(ServicesMiddleware, MiddlewarePosition.BEFORE_EXCEPTION, services=services)
    app.add_middleware(TrailingSlashMiddleware, MiddlewarePosition.BEFORE_SWAGGER)
    if settings.compiled_dispatch:
        # After the slash is settled and inside connexion's exception handling, so its
        # problems are answered as connexion's chain would answer them.
        app.add_middleware(
            CompiledDispatch, MiddlewarePosition.BEFORE_SWAGGER, **dispatch_options(settings)
        )
    logging.getLogger("calls_api").setLevel(settings.log_level.upper())
    return app
