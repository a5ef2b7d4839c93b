"""Work connexion repeats on every request, done once instead. The one module that reaches
into connexion's internals; tests/test_fastpath.py fails if an upgrade moves what it relies on.

What it changes (answers stay byte for byte the same; only when the work is done differs):

1. Parameter validation: connexion deep-copies each parameter's schema and builds a new
   jsonschema validator for every parameter of every request. `CachedParameterValidator`
   builds each one once (it is passed through the public `validator_map`, no patching).
2. Operation decoration: for every request connexion re-wraps the handler in its parameter
   and response decorators (inspecting its signature each time) and builds a new URI parser
   from the operation's definitions. `install()` makes both happen on an operation's first
   request and reuses them after.
3. Security functions: connexion inspects the key-check function's signature twice per
   request to decide which arguments to pass; `install()` caches that answer per function.
4. Argument names: with pythonic_params connexion turns every parameter name into
   snake_case with half a dozen regular expressions per name per request; `install()`
   caches the (pure) conversion per name.
5. Swagger UI: connexion's SwaggerUIMiddleware runs every request through its own router
   (a mount per API, five routes inside) before passing it on. `install()` passes a
   request straight on when its path cannot match any of those routes: when it starts with
   none of their literal prefixes, with or without a trailing slash (so Starlette's slash
   redirects are left to that router too). Any route of a kind it does not know turns this
   off.
6. Request context: connexion hands the request's scope and receive to the decorated handler
   as werkzeug proxies of its context variables, looked up again on every access;
   `_decorate_once` passes the variables' values, the same objects. `current_scope()` gives
   the adapters' runtime the same.
7. Request validation: for every request connexion's RequestValidationOperation builds
   two URI parsers, a parameter validator, the media-type table it checks the content
   type against, and a body validator. `install()` builds the parameter validator once per
   operation and, per content type and charset that passed the check (at most 16 kept),
   the body validator; what is validated, in which order, and every error stay the same.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

from connexion import security as _security
from connexion.apps import asynchronous as _asynchronous
from connexion.context import _receive as _receive_var
from connexion.context import _scope as _scope_var
from connexion.decorators import main as _decorators
from connexion.decorators import parameter as _parameter
from connexion.middleware import request_validation as _request_validation
from connexion.middleware import swagger_ui as _swagger_ui
from connexion.utils import is_null, is_nullable
from connexion.validators.parameter import ParameterValidator
from jsonschema import Draft4Validator
from starlette.routing import Mount, Route, Router
from starlette.types import Receive, Scope, Send

_installed = False


class CachedParameterValidator(ParameterValidator):  # type: ignore[misc]
    """connexion's ParameterValidator with each parameter's jsonschema validator built once.

    The parameter dicts belong to the loaded spec and live as long as the app, so they are
    keyed by identity (and kept referenced, so an identity is never reused).
    """

    _validators: ClassVar[dict[int, tuple[dict[str, Any], Any]]] = {}

    def validate_parameter(
        self,
        parameter_type: str,
        value: Any,
        param: dict[str, Any],
        param_name: str | None = None,
    ) -> str | None:
        if value is None or (is_nullable(param) and is_null(value)):
            # connexion's own handling of a missing or null value, unchanged.
            result: str | None = ParameterValidator.validate_parameter(
                parameter_type, value, param, param_name
            )
            return result
        cached = self._validators.get(id(param))
        if cached is None or cached[0] is not param:
            schema = param.get("schema", param)
            validator = Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
            cached = self._validators[id(param)] = (param, validator)
        # Draft4Validator.validate raises the first error iter_errors yields: so do we.
        for error in cached[1].iter_errors(value):
            return str(error)
        return None


def current_scope() -> Scope:
    """The ASGI scope of the request being handled (what connexion.context.scope proxies)."""
    scope: Scope = _scope_var.get()
    return scope


def _decorate_once(self: Any, function: Callable[..., Any]) -> Callable[..., Any]:
    """ASGIDecorator.__call__, with the URI parser and decorated function made once.

    connexion computes both from the operation of the request in hand; an ASGIDecorator
    serves one operation, so the first request's are every request's.
    """
    made: list[tuple[Any, Callable[..., Any]]] = []

    @functools.wraps(function)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not made:
            made.append((self.uri_parser, self.decorate(function)))
        uri_parser, decorated = made[0]
        # connexion passes its context proxies, which resolve to these on every access.
        request = self.framework.get_request(
            uri_parser=uri_parser, scope=_scope_var.get(), receive=_receive_var.get()
        )
        return await decorated(request)

    return wrapper


def _operation_fn(self: Any) -> Callable[..., Any]:
    """AsyncOperation.fn, built on first use and kept (connexion builds it per request)."""
    fn: Callable[..., Any] | None = self.__dict__.get("_calls_api_fn")
    if fn is None:
        fn = self.__dict__["_calls_api_fn"] = _build_fn(self)
    return fn


def _literal(path_format: str) -> str:
    return path_format.split("{", 1)[0]


def _prefixes(router: Any, base: str = "") -> list[str] | None:
    """Every path a route of `router` can match starts with one of these; None if unsure."""
    found: list[str] = []
    for route in router.routes:
        if isinstance(route, Mount):
            mounted = base + _literal(route.path)
            inner = route.app
            if isinstance(inner, Router):
                below = _prefixes(inner, mounted)
                if below is None:
                    return None
                found += below
            else:
                found.append(mounted)
        elif isinstance(route, Route):
            found.append(base + _literal(route.path_format))
        else:
            return None
    return found


async def _swagger_ui_call(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """SwaggerUIMiddleware.__call__, passing on at once what its router cannot match."""
    if scope["type"] == "http":
        prefixes = self.__dict__.get("_calls_api_prefixes", False)
        if prefixes is False:
            found = _prefixes(self.router)
            prefixes = self.__dict__["_calls_api_prefixes"] = (
                None if found is None else tuple(found)
            )
        path: str = scope["path"]
        if prefixes is not None and not any(
            candidate.startswith(prefixes) for candidate in (path, path + "/", path.rstrip("/"))
        ):
            await self.app(scope, receive, send)
            return
    await _ORIGINAL_SWAGGER_CALL(self, scope, receive, send)


_ORIGINAL_SWAGGER_CALL: Callable[..., Any] = _swagger_ui.SwaggerUIMiddleware.__call__
_ORIGINAL_VALIDATION_CALL: Callable[..., Any] = (
    _request_validation.RequestValidationOperation.__call__
)
_MAX_BODY_PLANS = 16


def _body_plan(self: Any, mime_type: str, encoding: str) -> tuple[Any, bool]:
    """(body validator or None, whether connexion logs that none is registered)."""
    schema = self._operation.body_schema(mime_type)
    if not schema:
        return None, False
    try:
        body_validator = self._validator_map["body"][mime_type]
    except KeyError:
        return None, True
    validator = body_validator(
        schema=schema,
        required=self._operation.request_body.get("required", False),
        nullable=is_nullable(self._operation.body_definition(mime_type)),
        encoding=encoding,
        strict_validation=self.strict_validation,
        uri_parser=self._operation.uri_parser_class(
            self._operation.parameters, self._operation.body_definition()
        ),
    )
    return validator, False


async def _validate_request(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
    """RequestValidationOperation.__call__, with its validators built once."""
    made = self.__dict__.get("_calls_api_validation")
    if made is None:
        uri_parser = self._operation._uri_parser_class(
            self._operation.parameters, self._operation.body_definition()
        )
        parameter_validator = self._validator_map["parameter"](
            self._operation.parameters,
            uri_parser=uri_parser,
            strict_validation=self.strict_validation,
            security_query_params=self.security_query_params,
        )
        made = self.__dict__["_calls_api_validation"] = (parameter_validator, {})
    parameter_validator, plans = made
    parameter_validator.validate(scope)

    mime_type, encoding = self.extract_content_type(scope["headers"])
    plan = plans.get((mime_type, encoding))
    if plan is None:
        self.validate_mime_type(mime_type)  # raises for a type the operation does not take
        plan = _body_plan(self, mime_type, encoding)
        if len(plans) < _MAX_BODY_PLANS:
            plans[(mime_type, encoding)] = plan
    validator, unregistered = plan
    if unregistered:
        _request_validation.logger.info(
            f"Skipping validation. No validator registered for content type: {mime_type}."
        )
    if validator is not None:
        receive, scope = await validator.wrap_receive(receive, scope=scope)
    await self.next_app(scope, receive, send)


_ORIGINAL_ASGI_CALL: Callable[..., Any] = _decorators.ASGIDecorator.__call__
_ORIGINAL_FN: property = _asynchronous.AsyncOperation.fn
_build_fn: Callable[[Any], Callable[..., Any]] = _ORIGINAL_FN.fget  # type: ignore[assignment]
_cached_inspect = functools.lru_cache(maxsize=256)(_security.inspect_function_arguments)
_cached_pythonic = functools.lru_cache(maxsize=1024)(_parameter.pythonic)


def install() -> None:
    """Apply 2. to 7. to connexion (idempotent). 1. needs only CachedParameterValidator."""
    global _installed
    if _installed:
        return
    _decorators.ASGIDecorator.__call__ = _decorate_once
    _asynchronous.AsyncOperation.fn = property(_operation_fn)
    _security.inspect_function_arguments = _cached_inspect
    _parameter.pythonic = _cached_pythonic
    _swagger_ui.SwaggerUIMiddleware.__call__ = _swagger_ui_call
    _request_validation.RequestValidationOperation.__call__ = _validate_request
    _installed = True
