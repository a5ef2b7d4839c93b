"""Stateful contract tests: schemathesis follows the spec's OpenAPI links.

createCall's answer links to getCall, updateCall, updateCallLegacy, deleteCall and
listCallEvents (by `account_sid` and `call_sid` from its body), getCall's to the update,
delete and events; so scenarios go create -> retrieve -> update -> delete with real calls,
and every response of every step goes through every schemathesis check.

Bounded: SCHEMATHESIS_STATEFUL_SCENARIOS scenarios (default 40) of at most
SCHEMATHESIS_STATEFUL_STEPS steps (default 8), with the fixed seed of test_schemathesis, of
valid requests (invalid ones are test_schemathesis' part).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar

import hypothesis
import schemathesis
from hypothesis import HealthCheck
from schemathesis.specs.openapi.checks import positive_data_acceptance

from calls_api.app import create_app
from calls_api.settings import Settings
from tests.conftest import AccountKey, make_account
from tests.test_schemathesis import (
    SEED,
    TAG_MAX_BYTES,
    fresh_idempotency_key,
    name_sip_headers_validly,
)

SCENARIOS = int(os.environ.get("SCHEMATHESIS_STATEFUL_SCENARIOS", "40"))
STEPS = int(os.environ.get("SCHEMATHESIS_STATEFUL_STEPS", "8"))
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
LINKED = {
    "GET /Accounts/{account_sid}/Calls/{call_sid}",
    "PUT /Accounts/{account_sid}/Calls/{call_sid}",
    "POST /Accounts/{account_sid}/Calls/{call_sid}",
    "DELETE /Accounts/{account_sid}/Calls/{call_sid}",
    "GET /Accounts/{account_sid}/Calls/{call_sid}/Events",
}
CREATE = "POST /Accounts/{account_sid}/Calls"


def _too_big_tag(body: Any) -> bool:
    tag = body.get("tag") if isinstance(body, dict) else None
    if not isinstance(tag, dict):
        return False
    text = json.dumps(tag, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass")) > TAG_MAX_BYTES


def test_the_spec_links_create_to_every_call_operation() -> None:
    import yaml

    spec = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "spec/openapi.yaml").read_text()
    )
    links = spec["paths"]["/Accounts/{account_sid}/Calls"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getCall",
        "updateCall",
        "updateCallLegacy",
        "deleteCall",
        "listCallEvents",
    }
    for link in links.values():
        assert link["parameters"] == {
            "account_sid": "$response.body#/account_sid",
            "call_sid": "$response.body#/call_sid",
        }


def test_stateful_scenarios_follow_the_links(tmp_path: Path) -> None:
    app_settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'calls.db'}",
        validate_responses=True,
        # Generated hosts are random names; see test_schemathesis.
        allow_private_webhooks=True,
    )
    account = make_account(app_settings.database_url, "stateful")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(app_settings)
    # Valid data only: the scenarios are about state carried along the links, and every step
    # is sent as the account's own key to its own account. Invalid input of every operation
    # is test_schemathesis' part.
    config = schemathesis.Config.from_dict({"seed": SEED, "generation": {"mode": "positive"}})
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app, config=config)
    created: set[str] = set()
    # operation -> statuses it answered for a call this run created (reached through a link)
    linked_statuses: dict[str, set[int]] = defaultdict(set)
    base = schema.as_state_machine()

    class CallsStateMachine(base):  # type: ignore[misc, valid-type]
        """Every step as the account's own key; the account placed into root cases."""

        owner: ClassVar[AccountKey] = account

        def before_call(self, case: schemathesis.Case[Any]) -> None:
            params = case.path_parameters
            if params is not None and "account_sid" in params:
                params["account_sid"] = self.owner.account_sid
            name_sip_headers_validly(case)
            fresh_idempotency_key(case)

        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, Any]:
            return {"headers": self.owner.headers}

        def after_call(self, response: Any, case: schemathesis.Case[Any]) -> None:
            super().after_call(response, case)
            label = case.operation.label
            if label == CREATE and response.status_code == 201:
                created.add(response.json()["call_sid"])
            call_sid = str((case.path_parameters or {}).get("call_sid"))
            if label in LINKED and call_sid in created:
                linked_statuses[label].add(response.status_code)
            assert response.status_code < 500 or response.status_code == 503, response.text

        def validate_response(
            self,
            response: Any,
            case: schemathesis.Case[Any],
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            excluded: list[schemathesis.CheckFunction] = (
                [positive_data_acceptance] if _too_big_tag(case.body) else []
            )
            case.validate_response(
                response,
                additional_checks=additional_checks,
                excluded_checks=excluded,
                transport_kwargs=kwargs or None,
            )

    CallsStateMachine.run(
        settings=hypothesis.settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )
    assert created, "no scenario created a call"
    reached = {label for label, statuses in linked_statuses.items() if statuses & {200, 204}}
    # Real calls were read, changed and deleted through the links, not random SIDs.
    assert reached >= {
        "GET /Accounts/{account_sid}/Calls/{call_sid}",
        "DELETE /Accounts/{account_sid}/Calls/{call_sid}",
        "GET /Accounts/{account_sid}/Calls/{call_sid}/Events",
    }, dict(linked_statuses)
    assert linked_statuses["PUT /Accounts/{account_sid}/Calls/{call_sid}"] & {200, 409}, dict(
        linked_statuses
    )
