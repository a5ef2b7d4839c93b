"""Property-based contract tests: schemathesis drives the app in process (ASGI) with every check.

Each operation of spec/openapi.yaml gets its schema examples, the coverage phase (boundary
values, missing and malformed parameters, undeclared methods and media types) and fuzzing in
positive and negative mode. Every response goes through every built-in check, as with
`--checks all`: not_a_server_error, status_code_conformance, content_type_conformance,
response_headers_conformance, response_schema_conformance, negative_data_rejection,
positive_data_acceptance, missing_required_header, unsupported_method,
allow_header_conformance, ignored_auth, use_after_free, ensure_resource_availability and
object_level_authorization.

SCHEMATHESIS_MAX_EXAMPLES sets the number of fuzzed cases per operation (default 150) and
SCHEMATHESIS_SEED the seed (fixed by default, so every run sends the same cases).
"""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from calls_api.app import create_app
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, make_account

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "150"))
# A fixed seed makes every phase repeatable, the coverage phase's draws included.
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20260101"))

CREATE_CALL = "POST /Accounts/{account_sid}/Calls"
LIST_CALLS = "GET /Accounts/{account_sid}/Calls"
GET_CALL = "GET /Accounts/{account_sid}/Calls/{call_sid}"
UPDATE_CALL = "PUT /Accounts/{account_sid}/Calls/{call_sid}"
UPDATE_CALL_LEGACY = "POST /Accounts/{account_sid}/Calls/{call_sid}"
DELETE_CALL = "DELETE /Accounts/{account_sid}/Calls/{call_sid}"
CALL_EVENTS = "GET /Accounts/{account_sid}/Calls/{call_sid}/Events"
# Operations that change or remove the call they name: aimed at a fresh call of their own,
# so the call the other cases read stays in place.
CHANGES_THE_CALL = {UPDATE_CALL, UPDATE_CALL_LEGACY, DELETE_CALL}
ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
CALL_SID = re.compile(r"CA[0-9a-f]{32}")

# Rules of CallCreate that spec/openapi.yaml states in prose only, because an OpenAPI 3.0 schema
# cannot: it has no `propertyNames`, and no keyword bounds an object's size as JSON. Schemathesis
# cannot know them, so a body that breaks one is no "valid data" the service must accept.
SIP_HEADER_NAME = re.compile(r"[Xx]-[A-Za-z0-9-]+")
TAG_MAX_BYTES = 8 * 1024

# What the run must have reached, so a change in how cases are aimed cannot hollow it out.
STATUSES_TO_REACH = {
    CREATE_CALL: {201, 400, 401, 403},
    LIST_CALLS: {200, 400, 401, 403},
    GET_CALL: {200, 400, 401, 403, 404},
    UPDATE_CALL: {200, 400, 401, 403, 404},
    UPDATE_CALL_LEGACY: {200, 400, 401, 404},
    DELETE_CALL: {204, 400, 401, 404},
    CALL_EVENTS: {200, 400, 401, 404},
    "GET /health": {200},
    "GET /ready": {200},
}


@dataclass
class Target:
    """The app under test and what its database holds."""

    app: Any
    account: AccountKey
    call_sid: str
    other_call_sid: str
    fresh_call: Callable[[], str]
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


def name_sip_headers_validly(case: schemathesis.Case[Any]) -> None:
    """Custom SIP header names must start with X- (a rule the schema cannot state)."""
    body = case.body
    sip_headers = body.get("headers") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(sip_headers, dict):
        body["headers"] = {
            name if SIP_HEADER_NAME.fullmatch(str(name)) else f"X-Fuzz-{index}": value
            for index, (name, value) in enumerate(sip_headers.items())
        }


def fresh_idempotency_key(case: schemathesis.Case[Any]) -> None:
    """One key per case: a key reused with another body is a 422 the service owes."""
    for name in list(case.headers or {}):
        if name.lower() == "idempotency-key" and case.headers is not None:
            case.headers[name] = uuid.uuid4().hex


def _load_schema(app: Any) -> schemathesis.BaseSchema:
    # The spec as the app serves it. An explicit Config: no schemathesis.toml is looked for, so
    # every check is enabled and cases are generated in every phase and mode, as the CLI would.
    return schemathesis.openapi.from_asgi(
        "/v1/openapi.json", app, config=schemathesis.Config(seed=SEED)
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    database_path: Path = tmp_path_factory.mktemp("schemathesis") / "calls.db"
    # Hosts in generated URLs are random names; looking each up would make the run wait on
    # DNS, not on the service. The address policy has tests of its own (test_http_lifecycle).
    app_settings = Settings(
        database_url=f"sqlite:///{database_path}",
        validate_responses=True,
        allow_private_webhooks=True,
    )
    account = make_account(app_settings.database_url, "schemathesis")
    other_account = make_account(app_settings.database_url, "schemathesis-other")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(app_settings)
    create_call = _load_schema(app)["/Accounts/{account_sid}/Calls"]["POST"]

    def place_call(owner: AccountKey) -> str:
        case = create_call.Case(
            path_parameters={"account_sid": owner.account_sid},
            body=dict(SEED_REQUEST),
            media_type="application/json",
        )
        response = case.call(headers=owner.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["call_sid"])

    return Target(
        app, account, place_call(account), place_call(other_account), lambda: place_call(account)
    )


@pytest.fixture(scope="module")
def api_schema(target: Target) -> schemathesis.BaseSchema:
    return _load_schema(target.app)


@pytest.fixture(autouse=True)
def _pytest_node_id_compat(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas read `Node._nodeid`, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")


def _bucket(case: schemathesis.Case[Any]) -> int:
    """0..9, stable for a generated case, so a replayed or shrunk case is aimed the same way."""
    body = None if isinstance(case.body, NotSet) else case.body
    parts = (case.method, case.path_parameters, case.query, case.headers, body)
    key = repr([sorted(part.items()) if isinstance(part, Mapping) else part for part in parts])
    return zlib.crc32(key.encode("utf-8", "backslashreplace")) % 10


def _aim(case: schemathesis.Case[Any], target: Target) -> dict[str, str] | None:
    """Point most cases at real data; return the headers to send, None to send the generated.

    Only well-formed generated SIDs are replaced, so malformed path parameters still reach the
    service. Bucket 0 keeps its random account (403) and bucket 1 its generated credentials
    (401); getCall reads the call placed beforehand in five buckets of ten (200) and another
    account's call in one (404). Custom SIP header names get an `X-` in most buckets, else
    header values would hardly ever be exercised.
    """
    bucket = _bucket(case)
    params = case.path_parameters
    if bucket != 0 and ACCOUNT_SID.fullmatch(str(params.get("account_sid"))):
        params["account_sid"] = target.account.account_sid
        if CALL_SID.fullmatch(str(params.get("call_sid"))):
            if 2 <= bucket <= 6 and case.operation.label in CHANGES_THE_CALL:
                params["call_sid"] = target.fresh_call()
            elif 2 <= bucket <= 6:
                params["call_sid"] = target.call_sid
            elif bucket == 7:
                params["call_sid"] = target.other_call_sid
    if bucket < 8:
        name_sip_headers_validly(case)
    fresh_idempotency_key(case)
    meta = case.meta
    declares_headers = any(
        parameter.location == ParameterLocation.HEADER
        for parameter in case.operation.iter_parameters()
    )
    negative_header = meta is not None and meta.is_negative_at(ParameterLocation.HEADER)
    if bucket == 1 or (negative_header and not declares_headers):
        # The credentials, or their absence, are what this case is about.
        return None
    return target.account.headers


def _unsendable_query(case: schemathesis.Case[Any]) -> bool:
    """Whether the query holds entries the HTTP client drops (a None or an empty list value,
    such as `{"": []}` for a negated additionalProperties): the request sent then lacks the
    very part that made the case invalid, so it may rightly be accepted."""
    return any(value is None or value == [] for value in (case.query or {}).values())


def _breaks_prose_rule(case: schemathesis.Case[Any]) -> str | None:
    if case.operation.label == LIST_CALLS and "page_token" in (case.query or {}):
        # A page token is opaque: only one the service gave out is valid, which no schema says.
        return "page_token was not given out by the service"
    body = case.body
    if case.operation.label != CREATE_CALL or not isinstance(body, dict):
        return None
    headers = body.get("headers")
    if isinstance(headers, dict):
        for name in headers:
            if not SIP_HEADER_NAME.fullmatch(str(name)):
                return f"headers: {name!r} is not a custom SIP header name"
    tag = body.get("tag")
    if isinstance(tag, dict):
        text = json.dumps(tag, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > TAG_MAX_BYTES:
            return f"tag is {size} bytes as JSON"
    return None


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    # Generation speed depends on the machine, not on the service.
    suppress_health_check=[HealthCheck.too_slow],
)
def test_api_contract(case: schemathesis.Case[Any], target: Target) -> None:
    headers = _aim(case, target)
    broken_rule = _breaks_prose_rule(case)
    # Only such a body skips positive_data_acceptance, and it must be refused instead.
    excluded: list[schemathesis.CheckFunction] = [positive_data_acceptance] if broken_rule else []
    if _unsendable_query(case):
        excluded.append(negative_data_rejection)
    response = case.call_and_validate(headers=headers, excluded_checks=excluded)
    status = response.status_code
    target.statuses[case.operation.label].add(status)
    if broken_rule:
        assert not 200 <= status < 300, f"accepted although {broken_rule}: {response.text}"
    if (
        case.method == "GET"
        and isinstance(case.body, NotSet)
        and "content-type" not in {name.lower() for name in case.headers or {}}
        and response.request.headers.get("Authorization") == target.account.headers["Authorization"]
        and case.path_parameters.get("call_sid") == target.other_call_sid
    ):
        # Another account's call is not found, exactly as a call that does not exist.
        assert status == 404, response.text


def test_api_contract_reached_every_outcome(target: Target) -> None:
    if not target.statuses:
        pytest.skip("test_api_contract did not run in this session")
    if MAX_EXAMPLES < 50:
        pytest.skip("too few fuzzed cases to reach every outcome")
    for label, expected in STATUSES_TO_REACH.items():
        missing = expected - target.statuses[label]
        assert not missing, f"{label} never answered {sorted(missing)}"
