"""Property-based contract tests: schemathesis drives the app in process (ASGI) with every check.

Every operation of spec/openapi.yaml gets schema examples, the coverage phase (boundary values,
missing and malformed parameters, undeclared methods and media types) and fuzzing in both
positive and negative mode, and every response is run through every built-in check
(`--checks all`): not_a_server_error, status/content-type/headers/schema conformance,
negative_data_rejection, positive_data_acceptance, missing_required_header,
unsupported_method, allow_header_conformance, ignored_auth, use_after_free,
ensure_resource_availability and object_level_authorization.

Raise SCHEMATHESIS_MAX_EXAMPLES (fuzzing examples per operation) for a deeper run.
"""

from __future__ import annotations

import os
import re
import warnings
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from starlette.types import ASGIApp

from calls_api.app import create_app
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, make_account

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "150"))

ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
CALLS = "/Accounts/{account_sid}/Calls"
CALL = "/Accounts/{account_sid}/Calls/{call_sid}"


@dataclass
class Target:
    """The app under test, its database and what is in it."""

    app: ASGIApp
    account: AccountKey
    other_account: AccountKey
    call_sid: str
    other_call_sid: str
    # Status codes answered per operation, to prove the interesting ones were reached.
    statuses: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    database_path: Path = tmp_path_factory.mktemp("schemathesis") / "calls.db"
    settings_ = Settings(database_url=f"sqlite:///{database_path}", validate_responses=True)
    account = make_account(settings_.database_url, "schemathesis")
    other_account = make_account(settings_.database_url, "schemathesis-other")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(settings_)
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app, config=schemathesis.Config())
    create = schema[CALLS]["POST"]

    def place_call(owner: AccountKey) -> str:
        case = create.Case(
            path_parameters={"account_sid": owner.account_sid},
            body=dict(SEED_REQUEST),
            media_type="application/json",
        )
        response = case.call(headers=owner.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["call_sid"])

    yield Target(
        app=app,
        account=account,
        other_account=other_account,
        call_sid=place_call(account),
        other_call_sid=place_call(other_account),
    )


@pytest.fixture(scope="module")
def api_schema(target: Target) -> schemathesis.BaseSchema:
    # An explicit Config: no schemathesis.toml is discovered, every check is enabled by default,
    # and generation runs in all modes (positive and negative) and all phases.
    return schemathesis.openapi.from_asgi(
        "/v1/openapi.json", target.app, config=schemathesis.Config()
    )


schema = schemathesis.pytest.from_fixture("api_schema")


def _bucket(case: schemathesis.Case) -> int:
    """A stable 0..9 for the generated case, so a replayed or shrunk case is sent the same way."""
    key = repr((sorted(case.path_parameters.items()), case.body))
    return zlib.crc32(key.encode("utf-8", "backslashreplace")) % 10


def _aim(case: schemathesis.Case, target: Target) -> dict[str, str] | None:
    """Point most cases at real data and return the headers to send, None for the generated ones.

    Only well-formed generated SIDs are replaced, so negative path parameters still reach the
    service as generated. One case in ten keeps its random account (403), one in ten keeps the
    generated credentials (401); for getCall the rest read the call placed beforehand (200) or
    one of another account (404).
    """
    bucket = _bucket(case)
    params = case.path_parameters
    if "account_sid" in params and bucket != 0 and ACCOUNT_SID.fullmatch(str(params["account_sid"])):
        params["account_sid"] = target.account.account_sid
        if "call_sid" in params and CALL_SID.fullmatch(str(params["call_sid"])):
            if bucket in (2, 3, 4, 5, 6):
                params["call_sid"] = target.call_sid
            elif bucket == 7:
                params["call_sid"] = target.other_call_sid
    meta = case.meta
    if bucket == 1 or (meta is not None and meta.is_negative_at(ParameterLocation.HEADER)):
        # The credentials (or their absence) are what this case tests: send them as generated.
        return None
    return target.account.headers


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_contract(case: schemathesis.Case, target: Target) -> None:
    headers = _aim(case, target)
    response = case.call_and_validate(headers=headers)
    target.statuses[case.operation.label].add(response.status_code)
    if case.path_parameters.get("call_sid") == target.other_call_sid and headers is not None:
        # Another account's call is not found, exactly as one that does not exist.
        assert response.status_code == 404, response.text
