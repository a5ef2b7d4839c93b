"""Requests to the customer's application: the call hook (answer_url) that returns verbs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson

from calls_api import signing
from calls_api.egress import ForbiddenDestination, check_destination
from calls_api.settings import Settings
from calls_api.store.records import CallRecord, HookAuth


class HookFailure(Exception):
    """The call hook did not give usable instructions; the message is the recorded reason."""


def call_fields(call: CallRecord) -> dict[str, Any]:
    """What the application is told about the call, as jambonz sends it (snake_case)."""
    return {
        "call_sid": call.call_sid,
        "account_sid": call.account_sid,
        "direction": call.direction,
        "from": call.from_,
        "to": call.to,
        "call_status": call.status,
        "sip_status": call.sip_status,
        "sip_reason": call.sip_reason,
        "tag": call.tag,
    }


def signed_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    fields: dict[str, Any],
    secret: str,
    *,
    timeout: float,
) -> httpx.Request:
    """A hook request carrying `fields` (a JSON body, or with GET the query), signed over
    the exact bytes sent."""
    if method == "GET":
        request = client.build_request("GET", url, params=query_params(fields), timeout=timeout)
        payload = request.url.query
    else:
        payload = json_bytes(fields)
        request = client.build_request(
            "POST",
            url,
            content=payload,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
    request.headers[signing.HEADER] = signing.sign(secret, payload)
    return request


def auth_of(auth: HookAuth | None) -> httpx.BasicAuth | None:
    return None if auth is None else httpx.BasicAuth(auth.username, auth.password)


async def fetch_instructions(
    client: httpx.AsyncClient,
    settings: Settings,
    secret: str,
    call: CallRecord,
    url: str,
    method: str,
    auth: HookAuth | None,
) -> list[dict[str, Any]]:
    """The verbs the application answers with, or HookFailure with the reason."""
    try:
        await check_destination(url, allow_private=settings.allow_private_webhooks, background=True)
    except ForbiddenDestination as exc:
        raise HookFailure(f"answer_url refused: {exc}") from exc
    request = signed_request(
        client, method, url, call_fields(call), secret, timeout=settings.hook_timeout
    )
    try:
        response = await client.send(request, auth=auth_of(auth))
    except httpx.TimeoutException as exc:
        raise HookFailure(f"answer_url timed out after {settings.hook_timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise HookFailure(f"answer_url could not be reached: {type(exc).__name__}") from exc
    if not 200 <= response.status_code < 300:
        raise HookFailure(f"answer_url answered HTTP {response.status_code}")
    try:
        verbs = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise HookFailure("answer_url did not answer JSON") from exc
    if not isinstance(verbs, list) or not all(
        isinstance(verb, dict) and isinstance(verb.get("verb"), str) for verb in verbs
    ):
        raise HookFailure("answer_url must answer a JSON array of verb objects with a 'verb'")
    return verbs


def json_bytes(value: Any) -> bytes:
    """Compact JSON by the standard library: a call's tag may hold integers wider than the
    64 bits orjson can write."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def ends_with_hangup(verbs: list[dict[str, Any]]) -> bool:
    return bool(verbs) and verbs[-1].get("verb") == "hangup"


def query_params(fields: dict[str, Any]) -> dict[str, str]:
    """Flat query parameters: nested values as JSON, null as empty."""
    result = {}
    for key, value in fields.items():
        if value is None:
            result[key] = ""
        elif isinstance(value, dict | list):
            result[key] = json_bytes(value).decode()
        else:
            result[key] = str(value)
    return result
