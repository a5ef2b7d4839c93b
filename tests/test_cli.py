"""The calls-api command: accounts, keys and their effect on the running API."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from calls_api.cli import main
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST

KEY = re.compile(r"^ck_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$")


@pytest.fixture
def cli(settings: Settings) -> CliRunner:
    return CliRunner(env={"CALLS_DATABASE_URL": settings.database_url})


def test_accounts_create_json_prints_exactly_the_sid_and_key(cli: CliRunner) -> None:
    result = cli.invoke(main, ["accounts", "create", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"account_sid", "api_key"}
    assert re.fullmatch(r"AC[0-9a-f]{32}", created["account_sid"])
    assert KEY.match(created["api_key"])


def test_created_keys_work_and_revoked_keys_stop_at_once(
    cli: CliRunner, client: TestClient
) -> None:
    account = json.loads(cli.invoke(main, ["accounts", "create", "--json"]).stdout)
    sid = account["account_sid"]
    second = json.loads(cli.invoke(main, ["keys", "create", sid, "--json"]).stdout)
    assert second["account_sid"] == sid
    assert second["api_key"] != account["api_key"]
    url = f"/v1/Accounts/{sid}/Calls"

    for key in (account["api_key"], second["api_key"]):
        response = client.post(url, json=SEED_REQUEST, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 201

    prefix = second["api_key"].split(".")[0]
    revoked = cli.invoke(main, ["keys", "revoke", prefix])
    assert revoked.exit_code == 0, revoked.output
    refused = client.post(
        url, json=SEED_REQUEST, headers={"Authorization": f"Bearer {second['api_key']}"}
    )
    assert refused.status_code == 401
    still = client.post(
        url, json=SEED_REQUEST, headers={"Authorization": f"Bearer {account['api_key']}"}
    )
    assert still.status_code == 201


def test_errors_are_clear_and_exit_non_zero(cli: CliRunner) -> None:
    unknown = cli.invoke(main, ["keys", "create", "AC" + "0" * 32])
    assert unknown.exit_code != 0
    assert "no account AC" in unknown.output
    twice = cli.invoke(main, ["keys", "revoke", "ck_000000000000"])
    assert twice.exit_code != 0
    assert "no active API key" in twice.output


def test_an_unsupported_database_url_is_a_clear_error() -> None:
    runner = CliRunner(env={"CALLS_DATABASE_URL": "mysql://localhost/calls"})
    result = runner.invoke(main, ["accounts", "create"])
    assert result.exit_code != 0
    assert "unsupported CALLS_DATABASE_URL scheme 'mysql'" in result.output


def test_plain_output_shows_the_key_once(cli: CliRunner) -> None:
    result = cli.invoke(main, ["accounts", "create", "--name", "acme"])
    assert result.exit_code == 0
    assert re.search(r"account_sid:\s+AC[0-9a-f]{32}", result.stdout)
    assert re.search(r"webhook_secret:\s+[0-9a-f]{64}", result.stdout)
    assert re.search(r"api_key:\s+ck_", result.stdout)


def test_rotate_secret_changes_what_events_are_signed_with(cli: CliRunner) -> None:
    created = cli.invoke(main, ["accounts", "create", "--json"])
    first_secret = created.stderr.split("webhook_secret:", 1)[1].strip()
    sid = json.loads(created.stdout)["account_sid"]
    rotated = cli.invoke(main, ["accounts", "rotate-secret", sid, "--json"])
    assert rotated.exit_code == 0, rotated.output
    answer = json.loads(rotated.stdout)
    assert answer["account_sid"] == sid
    assert re.fullmatch(r"[0-9a-f]{64}", answer["webhook_secret"])
    assert answer["webhook_secret"] != first_secret
    unknown = cli.invoke(main, ["accounts", "rotate-secret", "AC" + "0" * 32])
    assert unknown.exit_code != 0
    assert "no account" in unknown.output
