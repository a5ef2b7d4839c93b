"""The call state machine: which statuses follow which, and what a change records.

Statuses only move forward: queued -> trying -> ringing -> (early-media) -> in-progress,
and any of them to a final status. Nothing leaves a final status.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from calls_api.store.records import CallRecord, NewEvent
from generated import models

FINAL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_RANK = {"queued": 0, "trying": 1, "ringing": 2, "early-media": 3, "in-progress": 4}

# SIP status and reason recorded with each status a call can reach.
SIP = {
    "trying": (100, "Trying"),
    "ringing": (180, "Ringing"),
    "early-media": (183, "Session Progress"),
    "in-progress": (200, "OK"),
    "completed": (200, "OK"),
    "busy": (486, "Busy Here"),
    "no-answer": (487, "Request Terminated"),
    "canceled": (487, "Request Terminated"),
    "failed": (503, "Service Unavailable"),
}


class StatusRegression(Exception):
    """A change that would move a call backwards or out of a final status."""


def rank(status: str) -> int:
    """Order of statuses; every final status ranks last."""
    return 5 if status in FINAL else _RANK[status]


def is_final(status: str) -> bool:
    return status in FINAL


def answered(call: CallRecord) -> bool:
    return call.start_time is not None


def change_status(
    call: CallRecord,
    status: str,
    now: datetime,
    *,
    next_step: str | None = None,
    next_step_at: datetime | None = None,
    sip: tuple[int, str] | None = None,
    **changes: Any,
) -> CallRecord:
    """The call in its new status, with timestamps, SIP status and the next step set."""
    if is_final(call.status) or rank(status) <= rank(call.status):
        raise StatusRegression(f"{call.call_sid}: {call.status} -> {status}")
    sip_status, sip_reason = sip or SIP[status]
    values: dict[str, Any] = {
        "status": status,
        "sip_status": sip_status,
        "sip_reason": sip_reason,
        "date_updated": now,
        "next_step": next_step,
        "next_step_at": next_step_at,
        "event_count": call.event_count + 1,
    }
    if status == "in-progress":
        values["start_time"] = now
    if is_final(status):
        values["end_time"] = now
        values["next_step"] = values["next_step_at"] = None
        if call.start_time is not None:
            values["duration"] = max(0, int((now - call.start_time).total_seconds()))
    values.update(changes)
    return replace(call, **values)


def reschedule(
    call: CallRecord, step: str | None, at: datetime | None, now: datetime
) -> CallRecord:
    """The same status with another next step (no event)."""
    return replace(call, next_step=step, next_step_at=at, date_updated=now)


def status_event(call: CallRecord, now: datetime, first_attempt: datetime) -> NewEvent:
    """The webhook event for the call's current status (as stored after a change)."""
    event = models.CallStatusEvent(
        call_sid=call.call_sid,
        account_sid=call.account_sid,
        from_=call.from_,
        to=call.to,
        direction=models.CallDirection(call.direction),
        call_status=models.CallStatus(call.status),
        sip_status=call.sip_status,
        sip_reason=call.sip_reason,
        duration=call.duration if call.status == "completed" else None,
        timestamp=now,
        sequence=call.event_count,
    )
    # The payload the spec's callStatus callback describes; duration only once completed.
    payload = event.model_dump(mode="json", by_alias=True)
    if payload["duration"] is None:
        del payload["duration"]
    return NewEvent(
        call_status=call.status,
        payload=payload,
        url=call.event_url,
        method=call.event_method,
        auth=call.event_auth,
        next_attempt_at=first_attempt,
    )


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
