"""The Calls resource: create a call and read it back."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from calls_api.context import AccountContext
from calls_api.identity import new_call_sid
from calls_api.problems import BadRequest, NotFound
from calls_api.results import Created, Ok
from calls_api.store.records import CallRecord
from generated import models
from generated.contract import BASE_PATH

TAG_MAX_BYTES = 8 * 1024
_SIP_HEADER_NAME = re.compile(r"X-[A-Za-z0-9-]+", re.IGNORECASE)
_LINE_BREAK = re.compile(r"[\r\n\x00]")


async def create_call(
    ctx: AccountContext, account_sid: str, body: models.CallCreate
) -> Created[models.Call]:
    """Store the call as `queued`; the lifecycle that moves it on is the engine's work."""
    _check_tag(body.tag)
    _check_sip_headers(body.headers)
    now = datetime.now(UTC)
    record = CallRecord(
        call_sid=new_call_sid(),
        account_sid=account_sid,
        from_=body.from_,
        to=body.to,
        status=models.CallStatus.queued.value,
        direction=models.CallDirection.outbound.value,
        answer_url=body.answer_url,
        event_url=body.event_url,
        event_method=(body.event_method or models.EventMethod.POST).value,
        timeout=body.timeout,
        time_limit=body.time_limit,
        tag=body.tag,
        headers=body.headers,
        date_created=now,
        date_updated=now,
    )
    await ctx.store.create_call(record)
    return Created(
        _call_model(record), location=f"{BASE_PATH}/Accounts/{account_sid}/Calls/{record.call_sid}"
    )


async def get_call(ctx: AccountContext, account_sid: str, call_sid: str) -> Ok[models.Call]:
    """The stored call; another account's call is not found, as one that does not exist."""
    record = await ctx.store.get_call(account_sid, call_sid)
    if record is None:
        raise NotFound(f"No call {call_sid} in account {account_sid}")
    return Ok(_call_model(record))


def _check_tag(tag: dict[str, object] | None) -> None:
    if tag is None:
        return
    size = len(json.dumps(tag, separators=(",", ":"), ensure_ascii=False).encode())
    if size > TAG_MAX_BYTES:
        raise BadRequest(f"tag is {size} bytes as JSON; at most {TAG_MAX_BYTES} are allowed")


def _check_sip_headers(headers: dict[str, str] | None) -> None:
    for name, value in (headers or {}).items():
        if not _SIP_HEADER_NAME.fullmatch(name):
            raise BadRequest(
                f"headers: {name!r} is not a custom SIP header name: names start with 'X-' "
                "and hold only letters, digits and '-'"
            )
        if _LINE_BREAK.search(value):
            raise BadRequest(f"headers: the value of {name!r} must not contain line breaks")


def _call_model(record: CallRecord) -> models.Call:
    return models.Call(
        call_sid=record.call_sid,
        account_sid=record.account_sid,
        from_=record.from_,
        to=record.to,
        status=models.CallStatus(record.status),
        direction=models.CallDirection(record.direction),
        answer_url=record.answer_url,
        event_url=record.event_url,
        event_method=models.EventMethod(record.event_method),
        timeout=record.timeout,
        time_limit=record.time_limit,
        tag=record.tag,
        headers=record.headers,
        date_created=record.date_created,
        date_updated=record.date_updated,
        start_time=record.start_time,
        end_time=record.end_time,
        duration=record.duration,
    )
