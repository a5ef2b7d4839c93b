"""What changed between two versions of the spec, and whether it breaks consumers.

Each rule is one row of RULES; a change is reported with the JSON pointer where it happened.
Requests and responses are compared in their own direction: a consumer sends requests (so a
narrower request schema breaks it) and reads responses (so a removed response field or enum
value breaks it, while an added one does not). A webhook's body (an operation's `callbacks`)
is something the consumer reads, so it is compared like a response.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# rule -> (breaking, what the rule means)
RULES: dict[str, tuple[bool, str]] = {
    "path-removed": (True, "a path was removed"),
    "path-added": (False, "a path was added"),
    "operation-removed": (True, "an operation was removed"),
    "operation-added": (False, "an operation was added"),
    "operation-deprecated": (False, "an operation was deprecated"),
    "success-status-changed": (True, "the success status changed"),
    "error-response-added": (False, "an error response was documented"),
    "error-response-removed": (False, "an error response is no longer documented"),
    "callback-removed": (True, "a webhook the API sends was removed"),
    "callback-added": (False, "a webhook the API sends was added"),
    "security-removed": (True, "a security alternative was removed"),
    "parameter-required-added": (True, "a new required parameter"),
    "parameter-optional-added": (False, "a new optional parameter"),
    "parameter-removed": (True, "a parameter was removed"),
    "parameter-location-changed": (True, "a parameter moved to another location"),
    "parameter-became-required": (True, "a parameter became required"),
    "request-field-required-added": (True, "a new required request field"),
    "request-field-became-required": (True, "a request field became required"),
    "request-field-optional-added": (False, "a new optional request field"),
    "request-field-removed": (True, "a request field was removed"),
    "request-enum-value-removed": (True, "a request enum value was removed"),
    "request-enum-value-added": (False, "a request enum value was added"),
    "response-field-removed": (True, "a response field was removed"),
    "response-field-added": (False, "a response field was added"),
    "response-enum-value-removed": (True, "a response enum value was removed"),
    "response-enum-value-added": (False, "a response enum value was added"),
    "type-changed": (True, "the type changed"),
    "narrowed": (True, "a pattern, length or range was narrowed"),
    "widened": (False, "a pattern, length or range was widened"),
}

# keyword -> which way makes the accepted set smaller
_BOUNDS = {
    "minLength": "up",
    "minimum": "up",
    "minItems": "up",
    "minProperties": "up",
    "maxLength": "down",
    "maximum": "down",
    "maxItems": "down",
    "maxProperties": "down",
}


@dataclass(frozen=True)
class Change:
    """One difference, where it is, and whether it breaks consumers."""

    rule: str
    pointer: str
    detail: str = ""

    @property
    def breaking(self) -> bool:
        return RULES[self.rule][0]

    def __str__(self) -> str:
        marker = "BREAKING " if self.breaking else ""
        text = RULES[self.rule][1]
        return f"{marker}{self.pointer}: {text}" + (f" ({self.detail})" if self.detail else "")


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every change from `old` to `new`, breaking ones first."""
    changes = list(_paths(old, new))
    return sorted(changes, key=lambda change: (not change.breaking, change.pointer, change.rule))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _resolve(doc: dict[str, Any], node: Any) -> Any:
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 50:
        target: Any = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
        seen += 1
    return node


def _paths(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    old_paths, new_paths = old.get("paths", {}), new.get("paths", {})
    for path in old_paths.keys() - new_paths.keys():
        yield Change("path-removed", f"/paths/{_escape(path)}")
    for path in new_paths.keys() - old_paths.keys():
        yield Change("path-added", f"/paths/{_escape(path)}")
    for path in old_paths.keys() & new_paths.keys():
        old_item, new_item = old_paths[path], new_paths[path]
        for method in HTTP_METHODS:
            where = f"/paths/{_escape(path)}/{method}"
            if method in old_item and method not in new_item:
                yield Change("operation-removed", where)
            elif method in new_item and method not in old_item:
                yield Change("operation-added", where)
            elif method in old_item:
                yield from _operation(
                    where,
                    _Operation(old, old_item, old_item[method]),
                    _Operation(new, new_item, new_item[method]),
                )


@dataclass(frozen=True)
class _Operation:
    """One version of an operation: its document, its path item and itself."""

    doc: dict[str, Any]
    item: dict[str, Any]
    op: dict[str, Any]


def _operation(where: str, before: _Operation, after: _Operation) -> Iterator[Change]:
    old, new, old_op, new_op = before.doc, after.doc, before.op, after.op
    if new_op.get("deprecated") and not old_op.get("deprecated"):
        yield Change("operation-deprecated", where)
    old_success = {code for code in old_op.get("responses", {}) if str(code).startswith("2")}
    new_success = {code for code in new_op.get("responses", {}) if str(code).startswith("2")}
    if old_success != new_success:
        yield Change(
            "success-status-changed",
            f"{where}/responses",
            f"{', '.join(sorted(old_success))} -> {', '.join(sorted(new_success))}",
        )
    old_errors = {str(code) for code in old_op.get("responses", {})} - old_success
    new_errors = {str(code) for code in new_op.get("responses", {})} - new_success
    for code in sorted(new_errors - old_errors):
        yield Change("error-response-added", f"{where}/responses/{code}")
    for code in sorted(old_errors - new_errors):
        yield Change("error-response-removed", f"{where}/responses/{code}")
    old_security = old_op.get("security", old.get("security", []))
    new_security = new_op.get("security", new.get("security", []))
    for alternative in old_security:
        if alternative not in new_security:
            yield Change("security-removed", f"{where}/security", str(alternative))
    yield from _parameters(where, before, after)
    old_body = _body_schema(old, old_op)
    new_body = _body_schema(new, new_op)
    if old_body is not None and new_body is not None:
        yield from _schema(old, new, f"{where}/requestBody", old_body, new_body, "request", set())
    for code in old_success & new_success:
        old_schema = _response_schema(old, old_op, code)
        new_schema = _response_schema(new, new_op, code)
        if old_schema is not None and new_schema is not None:
            pointer = f"{where}/responses/{code}"
            yield from _schema(old, new, pointer, old_schema, new_schema, "response", set())
    yield from _callbacks(where, before, after)


def _callbacks(where: str, before: _Operation, after: _Operation) -> Iterator[Change]:
    """Each webhook request (callback name, URL expression, method) compared by its body."""

    def collect(side: _Operation) -> dict[tuple[str, str, str], Any]:
        found = {}
        for name, raw in side.op.get("callbacks", {}).items():
            for expression, item in _resolve(side.doc, raw).items():
                for method in HTTP_METHODS:
                    if method in item:
                        found[(name, expression, method)] = item[method]
        return found

    old_hooks, new_hooks = collect(before), collect(after)
    for name, expression, method in sorted(old_hooks.keys() | new_hooks.keys()):
        pointer = f"{where}/callbacks/{_escape(name)}/{_escape(expression)}/{method}"
        old_hook = old_hooks.get((name, expression, method))
        new_hook = new_hooks.get((name, expression, method))
        if new_hook is None:
            yield Change("callback-removed", pointer)
        elif old_hook is None:
            yield Change("callback-added", pointer)
        else:
            old_body = _body_schema(before.doc, old_hook)
            new_body = _body_schema(after.doc, new_hook)
            if old_body is not None and new_body is not None:
                yield from _schema(
                    before.doc,
                    after.doc,
                    f"{pointer}/requestBody",
                    old_body,
                    new_body,
                    "response",
                    set(),
                )


def _parameters(where: str, old_side: _Operation, new_side: _Operation) -> Iterator[Change]:
    def collect(side: _Operation) -> dict[str, Any]:
        params = {}
        for raw in [*side.item.get("parameters", []), *side.op.get("parameters", [])]:
            param = _resolve(side.doc, raw)
            params[param["name"]] = param
        return params

    old, new = old_side.doc, new_side.doc
    before, after = collect(old_side), collect(new_side)
    for name in before.keys() - after.keys():
        yield Change("parameter-removed", f"{where}/parameters/{_escape(name)}")
    for name in after.keys() - before.keys():
        rule = (
            "parameter-required-added"
            if after[name].get("required")
            else ("parameter-optional-added")
        )
        yield Change(rule, f"{where}/parameters/{_escape(name)}")
    for name in before.keys() & after.keys():
        pointer = f"{where}/parameters/{_escape(name)}"
        if before[name].get("in") != after[name].get("in"):
            detail = f"{before[name].get('in')} -> {after[name].get('in')}"
            yield Change("parameter-location-changed", pointer, detail)
        if after[name].get("required") and not before[name].get("required"):
            yield Change("parameter-became-required", pointer)
        yield from _schema(
            old,
            new,
            pointer,
            before[name].get("schema", {}),
            after[name].get("schema", {}),
            "request",
            set(),
        )


def _body_schema(doc: dict[str, Any], op: dict[str, Any]) -> Any:
    body = _resolve(doc, op.get("requestBody"))
    if not isinstance(body, dict):
        return None
    return body.get("content", {}).get("application/json", {}).get("schema")


def _response_schema(doc: dict[str, Any], op: dict[str, Any], code: str) -> Any:
    response = _resolve(doc, op["responses"][code])
    return response.get("content", {}).get("application/json", {}).get("schema")


def _schema(
    old: dict[str, Any],
    new: dict[str, Any],
    pointer: str,
    old_node: Any,
    new_node: Any,
    direction: str,
    seen: set[tuple[int, int]],
) -> Iterator[Change]:
    old_schema, new_schema = _resolve(old, old_node), _resolve(new, new_node)
    if not isinstance(old_schema, dict) or not isinstance(new_schema, dict):
        return
    key = (id(old_schema), id(new_schema))
    if key in seen:  # a recursive schema: compared once
        return
    seen = seen | {key}
    if old_schema.get("type") != new_schema.get("type"):
        detail = f"{old_schema.get('type')} -> {new_schema.get('type')}"
        yield Change("type-changed", pointer, detail)
        return
    yield from _enum(pointer, old_schema, new_schema, direction)
    yield from _bounds(pointer, old_schema, new_schema, direction)
    yield from _properties(old, new, pointer, old_schema, new_schema, direction, seen)
    if "items" in old_schema and "items" in new_schema:
        yield from _schema(
            old, new, f"{pointer}/items", old_schema["items"], new_schema["items"], direction, seen
        )
    for keyword in ("allOf", "oneOf", "anyOf"):
        for index, (before, after) in enumerate(
            zip(old_schema.get(keyword, []), new_schema.get(keyword, []), strict=False)
        ):
            yield from _schema(
                old, new, f"{pointer}/{keyword}/{index}", before, after, direction, seen
            )


def _enum(
    pointer: str, old_schema: dict[str, Any], new_schema: dict[str, Any], direction: str
) -> Iterator[Change]:
    if "enum" not in old_schema and "enum" not in new_schema:
        return
    before = set(map(str, old_schema.get("enum", [])))
    after = set(map(str, new_schema.get("enum", [])))
    if "enum" not in old_schema:
        yield Change("narrowed", f"{pointer}/enum", "values are now limited")
        return
    for value in sorted(before - after):
        yield Change(f"{direction}-enum-value-removed", f"{pointer}/enum", value)
    for value in sorted(after - before):
        yield Change(f"{direction}-enum-value-added", f"{pointer}/enum", value)


def _bounds(
    pointer: str, old_schema: dict[str, Any], new_schema: dict[str, Any], direction: str
) -> Iterator[Change]:
    # Only requests are narrowed against consumers; a response may tighten what it promises.
    if direction != "request":
        return
    for keyword, tighter in _BOUNDS.items():
        before, after = old_schema.get(keyword), new_schema.get(keyword)
        if before == after:
            continue
        narrowed = (before is None and after is not None) or (
            after is not None
            and before is not None
            and (after > before if tighter == "up" else after < before)
        )
        rule = "narrowed" if narrowed else "widened"
        yield Change(rule, f"{pointer}/{keyword}", f"{before} -> {after}")
    if old_schema.get("pattern") != new_schema.get("pattern"):
        rule = "widened" if new_schema.get("pattern") is None else "narrowed"
        yield Change(
            rule,
            f"{pointer}/pattern",
            f"{old_schema.get('pattern')} -> {new_schema.get('pattern')}",
        )


def _properties(
    old: dict[str, Any],
    new: dict[str, Any],
    pointer: str,
    old_schema: dict[str, Any],
    new_schema: dict[str, Any],
    direction: str,
    seen: set[tuple[int, int]],
) -> Iterator[Change]:
    before = old_schema.get("properties", {})
    after = new_schema.get("properties", {})
    old_required = set(old_schema.get("required", []))
    new_required = set(new_schema.get("required", []))
    for name in before.keys() - after.keys():
        yield Change(f"{direction}-field-removed", f"{pointer}/properties/{_escape(name)}")
    for name in after.keys() - before.keys():
        where = f"{pointer}/properties/{_escape(name)}"
        if direction == "response":
            yield Change("response-field-added", where)
        elif name in new_required:
            yield Change("request-field-required-added", where)
        else:
            yield Change("request-field-optional-added", where)
    for name in before.keys() & after.keys():
        where = f"{pointer}/properties/{_escape(name)}"
        if direction == "request" and name in new_required and name not in old_required:
            yield Change("request-field-became-required", where)
        yield from _schema(old, new, where, before[name], after[name], direction, seen)
