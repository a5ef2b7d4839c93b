"""Protections around every request, before connexion sees it: a body size limit (413,
checked before any parsing) and the security headers every response carries."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from calls_api.errors import PROBLEM_JSON, problem_document
from calls_api.problems import Problem


class BodyTooLarge(Problem):
    """The request body grew past the limit while it was read."""

    status = 413
    title = "Content Too Large"


class BodyLimitMiddleware:
    """Refuses bodies over `limit` bytes with a 413 problem, by Content-Length when it is
    given and by counting when it is not, so an oversized body is never parsed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(scope, send)
            return
        if not chunked:
            # The server hands on exactly the declared length, and with neither header there
            # is no body at all (RFC 9112, 6.3): nothing to count.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(f"The request body is larger than {self.limit} bytes")
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:  # too late to answer otherwise; the connection is cut
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        detail = f"The request body is larger than {self.limit} bytes"
        body = problem_document(413, detail, scope["path"], BodyTooLarge.title)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """`X-Content-Type-Options: nosniff` on every response; `Cache-Control: no-store` on all
    but the Swagger UI and the reference page (`cacheable_prefixes`), since API answers carry
    account data. Those may be cached but are revalidated (`no-cache`): they change with the
    spec."""

    def __init__(self, app: ASGIApp, cacheable_prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.cacheable_prefixes = cacheable_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = scope["path"].startswith(self.cacheable_prefixes)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if not cacheable:
                    headers["Cache-Control"] = "no-store"
                elif "Cache-Control" not in headers:
                    headers["Cache-Control"] = "no-cache"
            await send(message)

        await self.app(scope, receive, with_headers)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent or unreadable), and whether the body
    comes without one (Transfer-Encoding, or a length that can't be read)."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                chunked = True
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked
