"""The service around the operations: probes, docs, start-up checks, logs, persistence."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from calls_api.app import UnresolvedOperation, create_app
from calls_api.codegen.ir import build_api
from calls_api.codegen.spec_source import load_spec
from calls_api.scaffold import is_stub
from calls_api.services import Services
from calls_api.settings import Settings
from generated import adapters
from tests.conftest import SEED_REQUEST, AccountKey, serving, stable

ROOT = Path(__file__).resolve().parent.parent


def test_health_and_ready_need_no_key(client: TestClient) -> None:
    health = client.get("/v1/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_ready_is_503_problem_when_the_store_cannot_answer(settings: Settings) -> None:
    services = Services(settings)
    with TestClient(create_app(settings, services), raise_server_exceptions=False) as client:
        assert client.get("/v1/ready").status_code == 200
        assert client.portal is not None
        client.portal.call(services.store.close)  # the database goes away under the app
        response = client.get("/v1/ready")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert response.json()["status"] == 503
        # The liveness probe does not touch the database.
        assert client.get("/v1/health").status_code == 200


def test_spec_and_swagger_ui_are_served(client: TestClient) -> None:
    as_json = client.get("/v1/openapi.json")
    assert as_json.status_code == 200
    assert as_json.json()["paths"].keys() >= {
        "/Accounts/{account_sid}/Calls",
        "/Accounts/{account_sid}/Calls/{call_sid}",
    }
    as_yaml = client.get("/v1/openapi.yaml")
    assert as_yaml.status_code == 200
    assert yaml.safe_load(as_yaml.text)["info"]["title"] == "jambonz Calls API"
    ui = client.get("/v1/ui/")
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()


def test_every_operation_in_the_spec_resolves_at_start(settings: Settings) -> None:
    api = build_api(load_spec(ROOT / "spec" / "openapi.yaml"))
    assert {op.operation_id for op in api.operations} == set(adapters.OPERATIONS)
    create_app(settings)  # resolves every operationId or raises


def test_an_unresolvable_operation_fails_at_start_not_on_first_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    operations = dict(adapters.OPERATIONS)
    del operations["getCall"]
    monkeypatch.setattr(adapters, "OPERATIONS", operations)
    with pytest.raises(UnresolvedOperation, match="getCall"):
        create_app(settings)


def test_no_scaffolded_stub_remains() -> None:
    """make generate scaffolds 501 stubs for new operations; this fails until they are real."""
    import importlib

    api = build_api(load_spec(ROOT / "spec" / "openapi.yaml"))
    stubs = []
    for op in api.operations:
        module = importlib.import_module(f"handlers.{op.module}")
        if is_stub(getattr(module, op.name)):
            stubs.append(f"handlers/{op.module}.py:{op.name}")
    assert not stubs, f"implement the scaffolded handlers: {stubs}"


def test_calls_survive_a_restart(settings: Settings, account: AccountKey) -> None:
    with TestClient(create_app(settings)) as first:
        created = first.post(
            f"/v1/Accounts/{account.account_sid}/Calls", json=SEED_REQUEST, headers=account.headers
        )
        assert created.status_code == 201
    with TestClient(create_app(settings)) as second:
        fetched = second.get(created.headers["location"], headers=account.headers)
    assert fetched.status_code == 200
    assert stable(fetched.json()) == stable(created.json())


def test_one_log_line_per_request_without_the_key(
    client: TestClient, account: AccountKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="calls_api.access")
    client.post(
        f"/v1/Accounts/{account.account_sid}/Calls", json=SEED_REQUEST, headers=account.headers
    )
    client.get(
        f"/v1/Accounts/{account.account_sid}/Calls/CA{'0' * 32}",
        headers={"Authorization": "Bearer " + account.key + "x"},
    )
    lines = [r.getMessage() for r in caplog.records if r.name == "calls_api.access"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /v1/Accounts/{account_sid}/Calls 201 ")
    assert lines[0].endswith(f"account={account.account_sid}")
    assert lines[1].startswith("GET /v1/Accounts/{account_sid}/Calls/{call_sid} 401 ")
    assert lines[1].endswith("account=-")
    secret = account.key.split(".", 1)[1]
    assert all(secret not in record.getMessage() for record in caplog.records)


def test_a_running_app_is_kept_out_of_full_collections(settings: Settings) -> None:
    gc.unfreeze()  # whatever an earlier test left
    with serving(settings) as client:
        assert client.get("/v1/health").status_code == 200
        assert gc.get_freeze_count() > 10_000  # the spec, validators, connexion's chain
    assert gc.get_freeze_count() == 0
