"""The compiled pre-check of request bodies never accepts what jsonschema refuses.

calls_api.validation accepts a body at once when jsonschema_rs does, and asks jsonschema
(the reference, with connexion's OpenAPI additions) otherwise. So jsonschema_rs must be at
least as strict: checked here on the spec's own request schemas with valid bodies of every
shape and many generated variations of them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from connexion.json_schema import Draft4RequestValidator
from connexion.spec import Specification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from calls_api.app import SPEC_PATH
from calls_api.validation import fast_accepts, fast_validator

SPEC = Specification.load(SPEC_PATH)


def _body_schema(path: str, method: str) -> dict[str, Any]:
    content = SPEC["paths"][path][method]["requestBody"]["content"]
    schema: dict[str, Any] = content["application/json"]["schema"]
    return schema


CREATE = _body_schema("/Accounts/{account_sid}/Calls", "post")
UPDATE = _body_schema("/Accounts/{account_sid}/Calls/{call_sid}", "put")

VALID_CREATES: list[dict[str, Any]] = [
    {"from": "+15550000000", "to": "+15550000001", "answer_url": "https://example.com/a"},
    {
        "from": "+15550000000",
        "to": {"type": "phone", "number": "+15550000001"},
        "call_hook": {"url": "https://example.com/a", "method": "GET", "username": "u"},
        "call_status_hook": "https://example.com/e",
        "timeLimit": 30,
        "tag": {"a": [1, 2.5, None, {"b": "c"}], "wide": 10**30},
        "headers": {"X-Customer": "42"},
    },
    {
        "from": "alice",
        "to": {"type": "sip", "sipUri": "sip:bob@example.com"},
        "answer_url": "http://127.0.0.1:9/answer",
        "event_url": "https://example.com/e",
        "event_method": "GET",
        "timeout": 600,
        "time_limit": 14400,
    },
    {"from": "a", "to": {"type": "user", "name": "bob"}, "call_hook": "https://x.example/h"},
    {"from": "a", "to": {"type": "teams", "number": "+4930123"}, "answer_url": "https://a.b"},
]
VALID_UPDATES: list[dict[str, Any]] = [
    {"status": "completed"},
    {"call_status": "no-answer"},
    {"answer_url": "https://example.com/next"},
    {"call_hook": {"url": "https://example.com/next", "method": "POST"}},
]

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            "+15550000001\n",
            "https://example.com/a b",
            "https://exa mple.com/",
            "https://example.com/%zz",
            "https://[::1/",
            "http://example.com/{x}",
            "sip:bob@example.com\u0085",
            "\ufeff+1555",
            "X-Bad\r\nHeader",
            "completed",
            "phone",
            "GET",
            "x" * 300,
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


@st.composite
def variations(draw: st.DrawFn, bases: list[dict[str, Any]]) -> Any:
    body: Any = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        where = draw(st.sampled_from(_paths(body)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not where:
            body = draw(JSON) if action == "replace" else body
            continue
        parent = body
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        if action == "replace":
            parent[last] = draw(JSON)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(JSON)
    return body


def _reference_accepts(schema: dict[str, Any], body: Any) -> bool:
    validator = Draft4RequestValidator(schema, format_checker=Draft4Validator.FORMAT_CHECKER)
    return next(iter(validator.iter_errors(body)), None) is None


@pytest.mark.parametrize(("schema", "bodies"), [(CREATE, VALID_CREATES), (UPDATE, VALID_UPDATES)])
def test_valid_bodies_are_accepted_by_both(schema: dict[str, Any], bodies: list[Any]) -> None:
    fast = fast_validator(schema)
    assert fast is not None
    for body in bodies:
        assert _reference_accepts(schema, body), body
        assert fast_accepts(fast, body), body


@pytest.mark.parametrize(("schema", "bases"), [(CREATE, VALID_CREATES), (UPDATE, VALID_UPDATES)])
def test_never_accepts_what_jsonschema_refuses(
    schema: dict[str, Any], bases: list[dict[str, Any]]
) -> None:
    fast = fast_validator(schema)
    refused = 0

    @settings(
        max_examples=600,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(variations(bases))
    def check(body: Any) -> None:
        nonlocal refused
        reference = _reference_accepts(schema, body)
        refused += not reference
        if fast_accepts(fast, body):
            assert reference, f"jsonschema_rs accepted a body jsonschema refuses: {body!r}"

    check()
    assert refused > 100  # the variations do reach invalid bodies


def test_a_null_allowed_by_nullable_still_passes_through_jsonschema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "nullable": True}}}
    fast = fast_validator(schema)
    assert not fast_accepts(fast, {"x": None})  # stricter: left to jsonschema
    assert _reference_accepts(schema, {"x": None})


def test_what_it_cannot_compile_or_read_is_left_to_jsonschema() -> None:
    assert fast_validator({"type": 12}) is None
    assert not fast_accepts(None, {})
