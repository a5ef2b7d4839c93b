"""The Calls resource: create, read, list, update (hang up, redirect), delete, events."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from calls_api.context import AccountContext
from calls_api.engine.lifecycle import is_final
from calls_api.identity import new_call_sid
from calls_api.problems import BadRequest, Conflict, NotFound, Unprocessable
from calls_api.results import Created, NoContent, Ok
from calls_api.store import IdempotencyConflict
from calls_api.store.records import CallFilter, CallRecord, EventRecord, IdempotentCreate
from generated import models
from generated.contract import BASE_PATH
from handlers.call_input import Hook, check_hooks, hook, new_call

IDEMPOTENCY_WINDOW = timedelta(hours=24)


async def create_call(
    ctx: AccountContext,
    account_sid: str,
    body: models.CallCreate,
    idempotency_key: str | None = None,
) -> Created[models.Call]:
    """Store the call `queued` and hand it to the engine, once per Idempotency-Key."""
    request = new_call(body)
    request_hash = _fingerprint(body)
    if idempotency_key is not None:
        replay = await _replay(ctx, idempotency_key, request_hash)
        if replay is not None:
            return replay
    await check_hooks(ctx.settings.allow_private_webhooks, request.answer, request.event)
    now = datetime.now(UTC)
    record = ctx.services.engine.prepare(
        CallRecord(
            call_sid=new_call_sid(),
            account_sid=account_sid,
            from_=request.from_,
            to=request.to,
            status=models.CallStatus.queued.value,
            direction=models.CallDirection.outbound.value,
            answer_url=request.answer.url,
            answer_method=request.answer.method,
            answer_auth=request.answer.auth,
            event_url=request.event.url if request.event else None,
            event_method=request.event_method,
            event_auth=request.event.auth if request.event else None,
            timeout=request.timeout,
            time_limit=request.time_limit,
            tag=request.tag,
            headers=request.headers,
            date_created=now,
            date_updated=now,
        )
    )
    call = call_model(record)
    remembered = None
    if idempotency_key is not None:
        await ctx.store.forget_idempotent_creates(now - IDEMPOTENCY_WINDOW)
        response = call.model_dump_json(by_alias=True)
        remembered = (
            idempotency_key,
            IdempotentCreate(request_hash, record.call_sid, response, now),
        )
    try:
        await ctx.store.create_call(record, remembered)
    except IdempotencyConflict:
        # A concurrent request with the same key stored its call first: answer with that one.
        replay = await _replay(ctx, idempotency_key or "", request_hash)
        if replay is None:
            raise
        return replay
    ctx.services.engine.wake()
    return Created(call, location=_location(account_sid, record.call_sid))


async def get_call(ctx: AccountContext, account_sid: str, call_sid: str) -> Ok[models.Call]:
    """The stored call; another account's call is not found, as one that does not exist."""
    return Ok(call_model(await _stored(ctx, account_sid, call_sid)))


async def list_calls(
    ctx: AccountContext,
    account_sid: str,
    status: str | None = None,
    call_status: str | None = None,
    direction: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Ok[list[models.Call]]:
    """A page of the account's calls, newest first; `Link` names the next page."""
    size = page_size or 50
    after = _read_token(page_token) if page_token is not None else None
    if status is not None and call_status is not None and status != call_status:
        return Ok([])  # filters combine with AND: no call has two statuses
    where = CallFilter(
        status=status or call_status,
        direction=direction,
        from_=from_,
        to=to,
        created_after=_instant("created_after", created_after),
        created_before=_instant("created_before", created_before),
    )
    records = await ctx.store.list_calls(account_sid, where, size + 1, after)
    page = records[:size]
    headers = {}
    if len(records) > size:
        last = page[-1]
        query = {
            "status": status,
            "callStatus": call_status,
            "direction": direction,
            "from": from_,
            "to": to,
            "created_after": created_after,
            "created_before": created_before,
            "page_size": page_size,
            "page_token": _make_token(last.date_created, last.call_sid),
        }
        given = urlencode({k: v for k, v in query.items() if v is not None})
        headers["Link"] = f'<{BASE_PATH}/Accounts/{account_sid}/Calls?{given}>; rel="next"'
    return Ok([call_model(record) for record in page], headers=headers)


async def update_call(
    ctx: AccountContext, account_sid: str, call_sid: str, body: models.CallUpdate
) -> Ok[models.Call]:
    """One action: hang up (`status`, `call_status`) or redirect (`answer_url`, `call_hook`)."""
    call = await _stored(ctx, account_sid, call_sid)
    engine = ctx.services.engine
    if body.status is not None or body.call_status is not None:
        wanted = (body.status or body.call_status or models.HangupStatus.completed).value
        updated = await engine.hang_up(call, wanted)
    else:
        if body.call_hook is not None:
            target = hook(body.call_hook)
        elif body.answer_url is not None:
            target = Hook(body.answer_url, "POST")
        else:  # minProperties/maxProperties in the spec make this unreachable
            raise BadRequest("give one action: status, call_status, answer_url or call_hook")
        if call.status != models.CallStatus.in_progress.value:
            raise Conflict(f"Only an answered call can be redirected; this one is {call.status}")
        await check_hooks(ctx.settings.allow_private_webhooks, target)
        updated = await engine.redirect(call, target.url, target.method, target.auth)
    return Ok(call_model(updated))


async def update_call_legacy(
    ctx: AccountContext, account_sid: str, call_sid: str, body: models.CallUpdate
) -> Ok[models.Call]:
    """POST on a call: what older jambonz clients send for PUT."""
    return await update_call(ctx, account_sid, call_sid, body)


async def delete_call(ctx: AccountContext, account_sid: str, call_sid: str) -> NoContent:
    """Hang up a call that has not ended (its final event still goes out), then remove it."""
    call = await _stored(ctx, account_sid, call_sid)
    if not is_final(call.status):
        await ctx.services.engine.hang_up(call, "completed")
    if not await ctx.store.delete_call(account_sid, call_sid):
        raise NotFound(f"No call {call_sid} in account {account_sid}")
    return NoContent()


async def list_call_events(
    ctx: AccountContext, account_sid: str, call_sid: str
) -> Ok[list[models.CallEvent]]:
    """The call's status events in order, each with its delivery attempts."""
    await _stored(ctx, account_sid, call_sid)
    events = await ctx.store.list_events(account_sid, call_sid)
    return Ok([_event_model(event) for event in events])


def call_model(record: CallRecord) -> models.Call:
    """The API's view of a stored call."""
    return models.Call(
        call_sid=record.call_sid,
        sid=record.call_sid,
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
        sip_status=record.sip_status,
        sip_reason=record.sip_reason,
        failure_reason=record.failure_reason,
    )


def _event_model(event: EventRecord) -> models.CallEvent:
    return models.CallEvent(
        sequence=event.sequence,
        call_status=models.CallStatus(event.call_status),
        state=models.DeliveryState(event.state),
        url=event.url,
        method=models.HookMethod(event.method),
        date_created=event.date_created,
        delivered_at=event.delivered_at,
        next_attempt_at=event.next_attempt_at,
        payload=models.CallStatusEvent.model_validate(event.payload),
        attempts=[
            models.DeliveryAttempt(
                attempted_at=attempt.attempted_at,
                http_status=attempt.http_status,
                error=attempt.error,
                latency_ms=attempt.latency_ms,
            )
            for attempt in event.history
        ],
    )


async def _stored(ctx: AccountContext, account_sid: str, call_sid: str) -> CallRecord:
    record = await ctx.store.get_call(account_sid, call_sid)
    if record is None:
        raise NotFound(f"No call {call_sid} in account {account_sid}")
    return record


async def _replay(ctx: AccountContext, key: str, request_hash: str) -> Created[models.Call] | None:
    since = datetime.now(UTC) - IDEMPOTENCY_WINDOW
    remembered = await ctx.store.get_idempotent_create(ctx.account_sid, key, since)
    if remembered is None:
        return None
    if remembered.request_hash != request_hash:
        raise Unprocessable(f"Idempotency-Key {key} was used with a different request")
    call = models.Call.model_validate_json(remembered.response)
    return Created(call, location=_location(ctx.account_sid, remembered.call_sid))


def _fingerprint(body: models.CallCreate) -> str:
    # The standard library's json: tags may hold integers wider than 64 bits.
    canonical = json.dumps(
        body.model_dump(mode="json", by_alias=True, exclude_unset=True),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _location(account_sid: str, call_sid: str) -> str:
    return f"{BASE_PATH}/Accounts/{account_sid}/Calls/{call_sid}"


def _instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"{name} is not an RFC 3339 date-time: {value!r}") from exc
    if moment.tzinfo is None:
        raise BadRequest(f"{name} needs a time zone (for example Z): {value!r}")
    return moment


def _make_token(created: datetime, call_sid: str) -> str:
    raw = json.dumps([created.isoformat(), call_sid], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, call_sid = json.loads(raw)
        return datetime.fromisoformat(created), str(call_sid)
    except (ValueError, TypeError) as exc:
        raise BadRequest("page_token is not a token this service gave out") from exc
