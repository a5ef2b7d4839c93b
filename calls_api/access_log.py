"""One log line per request: method, path template, status, latency, account. Never a key."""

from __future__ import annotations

import logging
import time
from typing import IO, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from generated.adapters import ROUTES

log = logging.getLogger("calls_api.access")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Formatter(logging.Formatter):
    """logging.Formatter, with the time stamp's text made once per second, not per line."""

    _second = -1
    _text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        if self.default_msec_format:
            return self.default_msec_format % (self._text, record.msecs)
        return self._text


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """How `calls-api serve` logs: one line per record on standard error (or `stream`).

    Records collect only what the format shows, as the logging HOWTO's "Optimization"
    section describes: no lookup of the calling line, thread or process for each record.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class AccessLogMiddleware:
    """Logs after the response has started; the path is the spec's template, not the URL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # connexion records the operation and the caller in scope["extensions"], on copies
        # of the scope; a dict made here is shared by those copies, so we can read it after.
        scope.setdefault("extensions", {})

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %d %.1fms account=%s",
                    scope["method"],
                    _path_template(scope),
                    status,
                    (time.perf_counter() - started) * 1000,
                    _account(scope),
                )


def _path_template(scope: Scope) -> str:
    extensions: dict[str, Any] = scope.get("extensions") or {}
    operation_id = (extensions.get("connexion_routing") or {}).get("operation_id")
    if operation_id in ROUTES:
        return ROUTES[operation_id][1]
    return "(unrouted)"


def _account(scope: Scope) -> str:
    extensions: dict[str, Any] = scope.get("extensions") or {}
    user = (extensions.get("connexion_context") or {}).get("user")
    return str(user) if user else "-"
