"""The typed client make publish generates: built into a wheel, installed into a fresh
virtual environment, and run against a real calls-api serve."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from calls_api.publish.__main__ import publish
from tests.test_serve_smoke import Server

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from calls_api_client import ApiError, AsyncClient, Client, models

    base, account, key = sys.argv[1:4]
    client = Client(base, key)
    body = models.CallCreate.model_validate(
        {"from": "+15550000000", "to": "+15550000487", "answer_url": "https://example.com/a"}
    )
    created = client.create_call(account, body, idempotency_key="client-test")
    again = client.create_call(account, body, idempotency_key="client-test")
    fetched = client.get_call(account, created.call_sid)
    listed = client.list_calls(account, to="+15550000487")
    errors = {}
    for name, call in (
        ("bad", lambda: client.get_call(account, "not-a-sid")),
        ("missing", lambda: client.get_call(account, "CA" + "0" * 32)),
    ):
        try:
            call()
        except ApiError as error:
            errors[name] = [error.status, error.problem.status, error.problem.detail]

    async def from_async():
        async_client = AsyncClient(base, key)
        try:
            return (await async_client.get_call(account, created.call_sid)).call_sid
        finally:
            await async_client.close()

    print(json.dumps({
        "created": created.call_sid,
        "again": again.call_sid,
        "fetched": fetched.call_sid,
        "type": type(fetched).__name__,
        "listed": [c.call_sid for c in listed],
        "async": asyncio.run(from_async()),
        "errors": errors,
    }))
    """
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("publish")
    for folder in ("spec", "templates", "generated"):
        shutil.copytree(ROOT / folder, project / folder)
    shutil.rmtree(project / "spec" / "published", ignore_errors=True)
    written = publish(project, docs=False)
    wheels = [name for name in written if name.endswith(".whl")]
    assert len(wheels) == 1, written
    return project / wheels[0]


def test_the_client_wheel_works_from_a_fresh_virtualenv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    server = Server(tmp_path / "calls.db", tmp_path / "server.log")
    try:
        banner = server.output()
        account_sid = banner.split("account_sid:", 1)[1].split()[0]
        api_key = banner.split("api_key:", 1)[1].split()[0]
        ran = subprocess.run(
            [str(python), "-c", SCRIPT, f"http://127.0.0.1:{server.port}", account_sid, api_key],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
    finally:
        server.stop()
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    sid = result["created"]
    assert result["again"] == result["fetched"] == result["async"] == sid
    assert result["type"] == "Call"
    assert result["listed"] == [sid]
    assert result["errors"]["bad"][:2] == [400, 400]
    assert "does not match" in result["errors"]["bad"][2]
    assert result["errors"]["missing"] == [
        404,
        404,
        f"No call CA{'0' * 32} in account {account_sid}",
    ]
