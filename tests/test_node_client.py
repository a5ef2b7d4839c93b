"""jambonz's official Node client (@jambonz/node-client, pinned in tests/node_client) against
a real `calls-api serve`: create, retrieve, list, update (hang up) and delete."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.receiver import HANGUP_VERBS, Receiver, running_receiver
from tests.test_serve_smoke import Server

CLIENT_DIR = Path(__file__).parent / "node_client"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="Node.js and npm are needed for the jambonz client"
)


@pytest.fixture(scope="module")
def node_client() -> Path:
    """The client installed exactly as package-lock.json pins it."""
    if not (CLIENT_DIR / "node_modules" / "@jambonz" / "node-client").is_dir():
        assert NPM is not None
        subprocess.run(  # the lock file pins every package
            [NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=CLIENT_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return CLIENT_DIR / "run.js"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        running.bodies["/answer"] = HANGUP_VERBS
        yield running


def test_the_jambonz_node_client_runs_its_five_operations(
    node_client: Path, receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLS_ALLOW_PRIVATE_WEBHOOKS", "true")
    monkeypatch.setenv("CALLS_SIM_TRYING_SECONDS", "0.05")
    server = Server(tmp_path / "calls.db", tmp_path / "server.log")
    try:
        banner = server.output()
        account_sid = banner.split("account_sid:", 1)[1].split()[0]
        api_key = banner.split("api_key:", 1)[1].split()[0]
        assert NODE is not None
        completed = subprocess.run(
            [NODE, str(node_client)],
            env={
                **os.environ,
                "BASE_URL": f"http://127.0.0.1:{server.port}",
                "ACCOUNT_SID": account_sid,
                "API_KEY": api_key,
                "HOOK_BASE": receiver.url(""),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr + server.output()
        result = json.loads(completed.stdout)
        sid = result["created"]
        assert result["retrieved"]["call_sid"] == sid
        assert result["retrieved"]["to"] == "+15550000487"
        assert result["listed"] == [sid]
        assert result["afterUpdate"] == "canceled"
        assert result["afterDelete"] == f"Calls.retrieve: sid {sid} not found"
        # The calls went through the service for real: the final event reached the receiver.
        events = receiver.wait_for("/events", 3)
        assert events[-1].json()["call_status"] == "canceled"
        assert "GET /v1/Accounts/{account_sid}/Calls 200" in server.output()
        gone = httpx.get(
            f"{server.base}/Accounts/{account_sid}/Calls/{sid}",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        assert gone.status_code == 404
    finally:
        server.stop()
