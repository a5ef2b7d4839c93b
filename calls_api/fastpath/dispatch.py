"""The compiled dispatch: each of the spec's operations as one plan, made once at start.

connexion passes every request through a chain of layers (routing, security, request
validation, response validation, context, a second routing, the operation, its parameter
and response decorators), each looking the operation up again and re-reading the request.
`CompiledDispatch` sits in front of that chain (inside connexion's exception handling) and,
for a request it can take whole, does the same work once: it matches the path, validates
every parameter and the JSON body with the spec's schemas, checks the key and calls the
generated adapter with the arguments connexion would pass.

It answers only requests that pass every check. Whatever fails a check, or is of a kind the
plan does not cover (a content type other than `application/json`, a repeated or unknown
query parameter, no single Content-Length, a path no plan matches, an operation using a
feature plans do not cover...), goes on to connexion's chain untouched, with any body
already read replayed, so every error answer is connexion's own. The checks run in
connexion's order where it shows: parameters (no side effects), then the key, then the
body, so a refused key never reads the body. The key check is the one side effect (it
counts the request against the rate limits): a key that fails it is handed on uncounted
(connexion looks it up again and answers the 401), its 429 or 503 is raised as connexion's
security check raises it, and a request whose body fails after its key was counted carries
the key's answer (KEY_CHECKED) to connexion's key check, which gives it back uncounted.

tests/test_dispatch.py sends the same requests through both paths and compares the answers;
`CALLS_COMPILED_DISPATCH=false` turns the dispatch off.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from connexion.context import _context, _operation, _receive, _scope
from connexion.decorators.parameter import _get_val_from_param
from connexion.exceptions import TypeValidationError
from connexion.middleware.response_validation import ResponseValidationOperation
from connexion.operations import OpenAPIOperation
from connexion.resolver import Resolver
from connexion.security import SecurityHandlerFactory
from connexion.spec import Specification
from connexion.utils import coerce_type, is_nullable
from jsonschema import Draft4Validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calls_api.validation import fast_accepts, fast_validator, parse_json

BearerCheck = Callable[[str, Any], Awaitable[dict[str, Any] | None]]

_JSON = b"application/json"
_PRIMITIVES = frozenset({"string", "integer", "number", "boolean"})
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MISSING = object()
# The arguments of the adapter the request in hand goes to.
_ARGUMENTS: ContextVar[dict[str, Any]] = ContextVar("calls_api_dispatch_arguments")
# scope["extensions"] key: (token, token info) of a key the dispatch checked and counted
# before it handed the request on; the key check (calls_api.app) then answers with these.
KEY_CHECKED = "calls_api_key_checked"


class Unsupported(Exception):
    """An operation uses something plans do not cover: connexion serves it."""


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    definition: dict[str, Any]
    validator: Any  # jsonschema's, as connexion's parameter validator builds it
    fast: Any  # jsonschema_rs's of the same schema: what it accepts, jsonschema accepts
    argument: str | None  # the adapter's keyword for it, None when the adapter does not take it
    required: bool

    def accepts(self, value: Any) -> bool:
        return fast_accepts(self.fast, value) or bool(self.validator.is_valid(value))


@dataclass(slots=True)
class Plan:
    """One operation, compiled."""

    operation_id: str
    operation: Any
    pattern: re.Pattern[str]
    path_params: tuple[_Param, ...]  # in the order of the path's groups
    query_params: dict[str, _Param]
    query_defaults: dict[str, Any]  # the adapter's keyword -> the value connexion passes
    header_params: tuple[tuple[bytes, _Param], ...]
    bearer: bool
    has_body: bool
    body_validator: Any
    adapter: Callable[..., Awaitable[Any]]
    takes_token_info: bool
    run: ASGIApp = field(init=False)


@dataclass(slots=True)
class _Request:
    """What the key check reads of a request: its scope and connexion's context dict."""

    scope: Scope
    context: dict[str, Any]


def load_operations(spec_path: Path, resolver: Resolver) -> tuple[str, list[Any]]:
    """The spec's base path and its operations, as connexion reads them."""
    spec = Specification.load(spec_path)
    operations = []
    for path, item in spec["paths"].items():
        for method in _METHODS:
            if method in item:
                operations.append(
                    OpenAPIOperation.from_spec(spec, path=path, method=method, resolver=resolver)
                )
    return str(spec.base_path), operations


def _schema_validator(schema: dict[str, Any]) -> Any:
    return Draft4Validator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)


def _param(
    definition: dict[str, Any], arguments: set[str], sanitize: Callable[[str], str]
) -> _Param:
    schema = definition.get("schema")
    if not isinstance(schema, dict) or "content" in definition:
        raise Unsupported(f"parameter {definition['name']!r} has no schema")
    if schema.get("type") not in _PRIMITIVES or is_nullable(schema):
        raise Unsupported(f"parameter {definition['name']!r} is not a plain primitive")
    if "style" in definition or "explode" in definition or schema.get("format") == "path":
        raise Unsupported(f"parameter {definition['name']!r} has a style")
    argument = sanitize(definition["name"])
    return _Param(
        name=definition["name"],
        definition=definition,
        validator=_schema_validator(schema),
        fast=fast_validator(schema),
        argument=argument if argument in arguments else None,
        required=bool(definition.get("required")),
    )


def compile_plan(
    operation: Any,
    base_path: str,
    adapter: Callable[..., Awaitable[Any]],
    sanitize: Callable[[str], str],
) -> Plan:
    """The plan of one operation; Unsupported says why there is none."""
    signature = inspect.signature(adapter)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        raise Unsupported("the adapter takes **kwargs")
    arguments = set(signature.parameters)
    by_location: dict[str, list[dict[str, Any]]] = {}
    for definition in operation.parameters:
        by_location.setdefault(definition["in"], []).append(definition)
    if set(by_location) - {"path", "query", "header"}:
        raise Unsupported(f"parameters in {sorted(set(by_location))}")

    path_definitions = {d["name"]: d for d in by_location.get("path", [])}
    pattern_parts: list[str] = []
    path_params: list[_Param] = []
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\})?", base_path + operation.path):
        pattern_parts.append(re.escape(literal))
        if name:
            if name not in path_definitions or not name.isidentifier():
                raise Unsupported(f"path parameter {name!r}")
            if path_definitions[name]["schema"].get("type") != "string":
                raise Unsupported(f"path parameter {name!r} is not a string")
            path_params.append(_param(path_definitions[name], arguments, sanitize))
            pattern_parts.append("([^/]+)")
    if len(path_params) != len(path_definitions):
        raise Unsupported("a path parameter is not in the path")

    query_params = {d["name"]: _param(d, arguments, sanitize) for d in by_location.get("query", [])}
    query_defaults = {}
    for param in query_params.values():
        default = param.definition.get("default", param.definition["schema"].get("default"))
        if default is not None and param.argument is not None:
            query_defaults[param.argument] = _get_val_from_param(default, param.definition)

    security = operation.security
    if security not in ([], [{"bearer": []}]):
        raise Unsupported(f"security {security!r}")

    body_validator = None
    has_body = operation.is_request_body_defined
    if has_body:
        if "application/json" not in operation.consumes or operation.body_name("") != "body":
            raise Unsupported("the body is not application/json named body")
        if not operation.request_body.get("required") or "body" not in arguments:
            raise Unsupported("the body is optional, or the adapter does not take it")
        schema = operation.body_schema("application/json")
        if not schema or is_nullable(operation.body_definition("application/json")):
            raise Unsupported("the body has no schema, or may be null")
        body_validator = fast_validator(schema)
        if body_validator is None:
            raise Unsupported("the body schema does not compile")

    return Plan(
        operation_id=operation.operation_id,
        operation=operation,
        pattern=re.compile("".join(pattern_parts)),
        path_params=tuple(path_params),
        query_params=query_params,
        query_defaults=query_defaults,
        header_params=tuple(
            (d["name"].lower().encode("latin-1"), _param(d, set(), sanitize))
            for d in by_location.get("header", [])
        ),
        bearer=bool(security),
        has_body=has_body,
        body_validator=body_validator,
        adapter=adapter,
        takes_token_info="token_info" in arguments,
    )


def _overlap(a: str, b: str) -> bool:
    """Whether some path could match both templates."""
    left, right = a.split("/"), b.split("/")
    return len(left) == len(right) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(left, right, strict=True)
    )


class CompiledDispatch:
    """The ASGI layer that answers what its plans can take, and passes on the rest."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        spec_path: Path,
        resolver: Resolver,
        adapters: dict[str, Callable[..., Awaitable[Any]]],
        bearer: BearerCheck,
        sanitize: Callable[[str], str],
        validate_responses: bool,
        validator_map: dict[str, Any],
    ) -> None:
        self.app = app
        self.bearer = bearer
        base_path, operations = load_operations(spec_path, resolver)
        self.base_path = base_path
        self.plans: dict[str, list[Plan]] = {}
        self.unsupported: dict[str, str] = {}
        templates = [(op.method.upper(), base_path + op.path) for op in operations]
        for operation in operations:
            method, template = operation.method.upper(), base_path + operation.path
            clash = [
                t for m, t in templates if m == method and t != template and _overlap(t, template)
            ]
            adapter = adapters[operation.operation_id]
            try:
                if clash:
                    raise Unsupported(f"its path may also match {clash}")
                plan = compile_plan(operation, base_path, adapter, sanitize)
            except Unsupported as reason:
                self.unsupported[operation.operation_id] = str(reason)
                continue
            plan.run = self._runner(plan)
            if validate_responses:
                plan.run = ResponseValidationOperation(
                    plan.run, operation=operation, validator_map=validator_map
                )
            self.plans.setdefault(method, []).append(plan)

    def _runner(self, plan: Plan) -> ASGIApp:
        async def run(scope: Scope, receive: Receive, send: Send) -> None:
            response = await plan.adapter(**_ARGUMENTS.get())
            await response(scope, receive, send)

        return run

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "\n" in path:  # Starlette's routes never match one; connexion answers the 404
            await self.app(scope, receive, send)
            return
        for plan in self.plans.get(scope["method"], ()):
            match = plan.pattern.fullmatch(path)
            if match is not None:
                await self._serve(plan, match.groups(), scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, plan: Plan, path_values: Iterable[str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        kwargs = self._arguments(plan, path_values, scope)
        if kwargs is None:
            await self.app(scope, receive, send)
            return
        # The first of each, as connexion and Starlette read them; a second length is not ours.
        authorization = content_type = content_length = None
        lengths = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"content-length":
                content_length, lengths = value, lengths + 1

        extensions = scope.setdefault("extensions", {})
        # Recorded now, so the access log names the operation even when the key check raises.
        extensions.setdefault("connexion_routing", {}).update(
            {"api_base_path": self.base_path, "operation_id": plan.operation_id}
        )
        context: dict[str, Any] = extensions.setdefault("connexion_context", {})
        token = token_info = None
        if plan.bearer:
            # The key before the body, as connexion's chain: a refused key never reads it.
            token = _bearer_token(authorization)
            if token is None:
                await self.app(scope, receive, send)
                return
            try:
                token_info = await self.bearer(token, _Request(scope, context))
            except Exception as error:  # raised as connexion's security check raises it
                SecurityHandlerFactory._raise_most_specific([error])
                raise
            if token_info is None:  # connexion answers the 401, after its own look-up
                await self.app(scope, receive, send)
                return
            context["user"] = token_info.get("sub", token_info.get("uid"))
            context["token_info"] = token_info
            if plan.takes_token_info:
                kwargs["token_info"] = token_info

        if plan.has_body:
            messages: list[Message] = []
            if (
                content_type == _JSON
                and lengths == 1
                and content_length is not None
                and content_length.isdigit()
                and int(content_length) > 0
            ):
                body = _accepted_body(plan, await _read_body(receive, messages))
                if body is not _MISSING:
                    kwargs["body"] = body
            receive = _replay(messages, receive)
            if "body" not in kwargs:
                if token is not None:
                    # Checked and counted: connexion's key check takes this answer as it is.
                    extensions[KEY_CHECKED] = (token, token_info)
                await self.app(scope, receive, send)
                return

        _ARGUMENTS.set(kwargs)
        _context.set(context)
        _operation.set(plan.operation)
        _receive.set(receive)
        _scope.set(scope)
        await plan.run(scope, receive, send)

    def _arguments(
        self, plan: Plan, path_values: Iterable[str], scope: Scope
    ) -> dict[str, Any] | None:
        """The adapter's arguments, or None when a parameter fails (or is not plain)."""
        kwargs: dict[str, Any] = {}
        path_params: dict[str, Any] = {}
        for param, raw in zip(plan.path_params, path_values, strict=True):
            value = _coerced(param, raw)
            if not param.accepts(value):
                return None
            path_params[param.name] = value
            if param.argument is not None:
                kwargs[param.argument] = _get_val_from_param(value, param.definition)
        query_string: bytes = scope.get("query_string", b"")
        if query_string:
            seen: set[str] = set()
            for name, raw in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
                given = plan.query_params.get(name)
                if given is None or name in seen:
                    return None  # unknown (strict validation) or repeated: connexion decides
                seen.add(name)
                value = _coerced(given, raw)
                if not given.accepts(value):
                    return None
                if given.argument is not None:
                    kwargs[given.argument] = _get_val_from_param(value, given.definition)
        for param in plan.query_params.values():
            if param.required and (param.argument is None or param.argument not in kwargs):
                return None
        for argument, default in plan.query_defaults.items():
            kwargs.setdefault(argument, default)
        for header, param in plan.header_params:
            found = next((v for n, v in scope["headers"] if n == header), None)
            if found is None:
                if param.required:
                    return None
                continue
            if not param.accepts(found.decode("latin-1")):
                return None
        scope.setdefault("path_params", {}).update(path_params)
        return kwargs


def _bearer_token(authorization: bytes | None) -> str | None:
    """The token of `Authorization: Bearer <token>`, read as connexion reads it."""
    if authorization is None:
        return None
    parts = authorization.decode("latin-1").split(maxsplit=1)
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    return None


def _coerced(param: _Param, raw: str) -> Any:
    """The value connexion's URI parser makes of a raw parameter."""
    try:
        return coerce_type(param.definition, raw, "parameter", param.name)
    except TypeValidationError:
        return raw


def _accepted_body(plan: Plan, raw: bytes) -> Any:
    """The parsed body when it is certainly valid, else _MISSING (connexion decides)."""
    if not raw:
        return _MISSING
    try:
        body = parse_json(raw)
    except Exception:  # connexion's validator words the 400
        return _MISSING
    if body is None or not fast_accepts(plan.body_validator, body):
        return _MISSING
    return body


async def _read_body(receive: Receive, messages: list[Message]) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return b""  # a disconnect: connexion's chain sees it too
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives `messages` again, then what `receive` gives."""
    if not messages:
        return receive
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
