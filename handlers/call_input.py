"""What a create or update request asks for, whichever of the accepted shapes it uses.

The seed's names (`answer_url`, `event_url`, `event_method`, `time_limit`, `to` as a string)
and jambonz's (`call_hook`, `call_status_hook`, `timeLimit`, `to` as a target object) both
arrive here and leave as one plain description of the call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from calls_api.egress import ForbiddenDestination, check_destination
from calls_api.problems import BadRequest
from calls_api.store.records import HookAuth
from generated import models

TAG_MAX_BYTES = 8 * 1024
_SIP_HEADER_NAME = re.compile(r"X-[A-Za-z0-9-]+", re.IGNORECASE)


@dataclass(frozen=True)
class Hook:
    """Where to send a request, how, and with which credentials."""

    url: str
    method: str
    auth: HookAuth | None = None


@dataclass(frozen=True)
class NewCall:
    """A create request, in one shape."""

    from_: str
    to: str
    answer: Hook
    event: Hook | None
    event_method: str
    timeout: int
    time_limit: int | None
    tag: dict[str, Any] | None
    headers: dict[str, str] | None


def new_call(body: models.CallCreate) -> NewCall:
    """Read a validated create body; 400 for what the schema cannot say."""
    _check_tag(body.tag)
    _check_sip_headers(body.headers)
    event_method = (body.event_method or models.EventMethod.POST).value
    answer = hook(body.call_hook) if body.call_hook is not None else None
    if answer is None:
        if body.answer_url is None:  # the schema's oneOf makes this unreachable
            raise BadRequest("one of 'answer_url' or 'call_hook' is required")
        answer = Hook(body.answer_url, "POST")
    if body.call_status_hook is not None:
        event: Hook | None = hook(body.call_status_hook, default_method=event_method)
    elif body.event_url is not None:
        event = Hook(body.event_url, event_method)
    else:
        event = None
    return NewCall(
        from_=body.from_,
        to=target(body.to),
        answer=answer,
        event=event,
        event_method=event.method if event else event_method,
        timeout=body.timeout,
        time_limit=body.time_limit if body.time_limit is not None else body.timeLimit,
        tag=body.tag,
        headers=body.headers,
    )


def hook(value: models.WebhookUrl | models.HookObject, default_method: str = "POST") -> Hook:
    """A jambonz hook: a URL, or an object with its method and Basic-auth credentials."""
    if isinstance(value, models.WebhookUrl):
        return Hook(value.root, default_method)
    auth = None
    if value.username is not None:
        auth = HookAuth(value.username, value.password or "")
    method = value.method.value if value.method is not None else default_method
    return Hook(value.url, method, auth)


def target(
    value: models.Destination
    | models.PhoneTarget
    | models.SipTarget
    | models.UserTarget
    | models.TeamsTarget,
) -> str:
    """The destination as a string, whichever way it was given."""
    if isinstance(value, models.Destination):
        return value.root
    if isinstance(value, models.SipTarget):
        return value.sipUri
    if isinstance(value, models.UserTarget):
        return value.name
    return value.number


async def check_hooks(allow_private: bool, *hooks: Hook | None) -> None:
    """400 for a hook on a loopback, private or otherwise internal address."""
    for each in hooks:
        if each is None:
            continue
        try:
            await check_destination(each.url, allow_private=allow_private)
        except ForbiddenDestination as exc:
            raise BadRequest(f"{each.url} is not allowed: {exc}") from exc


def _check_tag(tag: dict[str, Any] | None) -> None:
    if tag is None:
        return
    size = len(json.dumps(tag, separators=(",", ":"), ensure_ascii=False).encode())
    if size > TAG_MAX_BYTES:
        raise BadRequest(f"tag is {size} bytes as JSON; at most {TAG_MAX_BYTES} are allowed")


def _check_sip_headers(headers: dict[str, str] | None) -> None:
    for name in headers or {}:
        if not _SIP_HEADER_NAME.fullmatch(name):
            raise BadRequest(
                f"headers: {name!r} is not a custom SIP header name: names start with 'X-' "
                "and hold only letters, digits and '-'"
            )
