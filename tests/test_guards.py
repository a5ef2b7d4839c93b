"""Guards around every request: the body size limit and the security headers."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from starlette.testclient import TestClient

from calls_api.app import create_app
from calls_api.guards import BodyLimitMiddleware
from calls_api.settings import Settings
from tests.conftest import SEED_REQUEST, AccountKey, count_calls


def over_limit(settings: Settings) -> bytes:
    padding = "x" * (settings.max_body_bytes + 1)
    return (
        b'{"from": "+15550000000", "to": "+15550000001", "answer_url": '
        b'"https://example.com/a", "tag": {"pad": "' + padding.encode() + b'"}}'
    )


def test_a_body_over_the_limit_is_413_before_parsing(
    client: TestClient, account: AccountKey, settings: Settings, database_url: str
) -> None:
    response = client.post(
        f"/v1/Accounts/{account.account_sid}/Calls",
        content=over_limit(settings),
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        response.json()["detail"]
        == f"The request body is larger than {settings.max_body_bytes} bytes"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert count_calls(database_url) == 0


def test_a_streamed_body_without_length_is_counted() -> None:
    """Chunked upload, no Content-Length: the guard counts while the app reads, and answers
    413 as soon as the count passes the limit (connexion itself refuses such bodies with
    400 before reading them; the guard holds for any reader)."""
    read: list[int] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            read.append(len(message["body"]))
            more = message["more_body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    chunks = [b"x" * 4096] * 10
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop(), "more_body": bool(chunks)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/v1/upload", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(BodyLimitMiddleware(reader, limit=10_000)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"larger than 10000 bytes" in sent[1]["body"]
    assert sum(read) <= 10_000, "nothing past the limit reached the app"


def test_the_limit_is_configurable(settings: Settings, account: AccountKey) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024})
    with TestClient(create_app(small)) as client:
        body = {**SEED_REQUEST, "tag": {"pad": "x" * 1100}}
        refused = client.post(
            f"/v1/Accounts/{account.account_sid}/Calls", json=body, headers=account.headers
        )
        accepted = client.post(
            f"/v1/Accounts/{account.account_sid}/Calls", json=SEED_REQUEST, headers=account.headers
        )
    assert refused.status_code == 413
    assert accepted.status_code == 201


def test_every_answer_carries_the_security_headers(client: TestClient, account: AccountKey) -> None:
    url = f"/v1/Accounts/{account.account_sid}/Calls"
    answers = [
        client.post(url, json=SEED_REQUEST, headers=account.headers),
        client.get(url, headers=account.headers),
        client.get(f"{url}/CA{'0' * 32}", headers=account.headers),
        client.get(url),
        client.post(
            url, content=b"{", headers={**account.headers, "Content-Type": "application/json"}
        ),
        client.get("/v1/health"),
        client.get("/v1/openapi.json"),
        client.get("/nowhere"),
    ]
    for response in answers:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["cache-control"] == "no-store", response.url


def test_swagger_ui_assets_may_be_cached(client: TestClient) -> None:
    page = client.get("/v1/ui/")
    assert page.status_code == 200
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in page.headers.get("cache-control", "")
