"""Request body validation with messages that say what is wrong.

connexion's JSON body validator builds a new jsonschema validator on every request and
reports jsonschema's single best match, which for `anyOf`/`oneOf` reads "... is not valid
under any of the given schemas". This one compiles the validator once per operation and,
when a combinator fails, names what the branches ask for instead.

jsonschema (with connexion's OpenAPI additions) decides; a compiled Rust validator of the
same schema (jsonschema_rs) runs first only to accept quickly. It is at least as strict:
it does not know OpenAPI's `nullable` (so refuses such nulls), its `$` does not match
before a final newline, and every format jsonschema checks is checked by jsonschema's own
function. Whatever it refuses, or cannot read, goes to jsonschema, whose answer stands;
tests/test_validation_fast.py checks that it never accepts what jsonschema refuses.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import jsonschema_rs
from connexion.exceptions import BadRequestProblem
from connexion.json_schema import Draft4RequestValidator
from connexion.validators import JSONRequestBodyValidator
from jsonschema import Draft4Validator, ValidationError
from jsonschema.exceptions import best_match

_COMPILED: dict[int, tuple[dict[str, Any], Any]] = {}
_FAST: dict[int, tuple[dict[str, Any], Any]] = {}
# A \uD800-\uDFFF escape: part of a surrogate pair, or a lone surrogate to refuse.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """The body as JSON, exactly (integers of any size stay integers), or a 400 problem for
    text that is not UTF-8, not JSON, NaN or Infinity, or a lone surrogate escape, which no
    store or answer could hold."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequestProblem(detail="The request body is not valid UTF-8 text.") from exc
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise BadRequestProblem(detail=f"The request body is not valid JSON: {exc}") from exc
    if _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequestProblem(
                detail="The request body holds a lone surrogate (\\ud800-\\udfff), which is "
                "not text"
            ) from exc
    return body


class RequestBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]
    """connexion's JSON body validator, compiled once, with clearer messages."""

    @property
    def _validator(self) -> Any:
        # connexion makes a validator object per request; the compiled schema is kept per
        # operation schema (the same dict for the app's lifetime).
        cached = _COMPILED.get(id(self._schema))
        if cached is None or cached[0] is not self._schema:
            compiled = Draft4RequestValidator(
                self._schema, format_checker=Draft4Validator.FORMAT_CHECKER
            )
            cached = _COMPILED[id(self._schema)] = (self._schema, compiled)
        return cached[1]

    @property
    def _fast(self) -> Any:
        cached = _FAST.get(id(self._schema))
        if cached is None or cached[0] is not self._schema:
            cached = _FAST[id(self._schema)] = (self._schema, fast_validator(self._schema))
        return cached[1]

    async def _parse(self, stream: AsyncIterator[bytes], scope: Any) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if not raw:
            return None
        return parse_json(raw)

    def _validate(self, body: Any) -> dict[str, Any] | None:
        if not self._nullable and body is None:
            raise BadRequestProblem(detail="Request body must not be empty")
        if fast_accepts(self._fast, body):
            return None
        error = best_match(self._validator.iter_errors(body))
        if error is None:
            return None
        raise BadRequestProblem(detail=describe(error))


def _format_check(name: str) -> Any:
    checker = Draft4Validator.FORMAT_CHECKER

    def conforms(value: Any) -> bool:
        return bool(checker.conforms(value, name))

    return conforms


def fast_validator(schema: dict[str, Any]) -> Any:
    """jsonschema_rs's Draft 4 validator of `schema`, checking formats as jsonschema does;
    None when it cannot compile the schema (then jsonschema alone decides)."""
    formats = {name: _format_check(name) for name in Draft4Validator.FORMAT_CHECKER.checkers}
    try:
        return jsonschema_rs.Draft4Validator(schema, formats=formats, validate_formats=True)
    except Exception:  # any schema it cannot take is left to jsonschema
        return None


def fast_accepts(validator: Any, body: Any) -> bool:
    """True only when the compiled validator accepts `body`; False sends it to jsonschema."""
    if validator is None:
        return False
    try:
        return bool(validator.is_valid(body))
    except Exception:  # a value it cannot read: jsonschema decides
        return False


def describe(error: ValidationError) -> str:
    """One sentence: where in the body, and what is wrong there."""
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.path)
    location = f" at body{where}" if where else ""
    if error.validator in ("anyOf", "oneOf"):
        return _combinator_message(error) + location
    if error.validator == "not":
        return _not_message(error, where)
    return f"{error.message}{location}"


def _not_message(error: ValidationError, where: str) -> str:
    refused = error.validator_value
    if refused == {}:
        # A field that is refused whatever its value: its description says why.
        reason = (
            str(error.schema.get("description", "")).strip()
            if isinstance(error.schema, dict)
            else ""
        )
        return " ".join(f"body{where} is not accepted. {reason}".split())
    if isinstance(refused, dict) and set(refused) == {"required"}:
        names = " and ".join(repr(name) for name in refused["required"])
        return f"give only one of {names}" + (f" at body{where}" if where else "")
    return str(error.message)


def _combinator_message(error: ValidationError) -> str:
    branches = error.validator_value if isinstance(error.validator_value, list) else []
    required_only = [
        branch["required"]
        for branch in branches
        if isinstance(branch, dict) and set(branch) == {"required"}
    ]
    if required_only and len(required_only) == len(branches):
        names = " or ".join(
            repr(names[0]) if len(names) == 1 else str(names) for names in required_only
        )
        if error.validator == "oneOf" and "is valid under each of" in error.message:
            return f"give only one of {names}"
        return f"one of {names} is required"
    # Otherwise report the branch that came closest: the deepest error among them.
    nested = best_match(error.context or [])
    if nested is not None and nested is not error:
        return describe(nested)
    return str(error.message)
