"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request it gets and
answers as told (a status code per path, optional delay, a JSON body for the call hook)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.requests import Request
from starlette.responses import Response

HANGUP_VERBS: list[dict[str, Any]] = [{"verb": "say", "text": "hello"}, {"verb": "hangup"}]


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """Answers by path: `statuses[path]` (a list consumed in order, then 200), `bodies[path]`."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)
    bodies: dict[str, Any] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 15.0) -> list[Received]:
        """Block until `count` requests reached `path` (or fail after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"{path}: {len(self.received(path))} requests, wanted {count}")

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        path = request.url.path
        with self.lock:
            self.requests.append(
                Received(
                    request.method,
                    path,
                    scope.get("query_string", b""),
                    {k.lower(): v for k, v in request.headers.items()},
                    body,
                    time.monotonic(),
                )
            )
            queued = self.statuses.get(path)
            status = queued.pop(0) if queued else 200
        if path in self.delays:
            await asyncio.sleep(self.delays[path])
        content = orjson.dumps(self.bodies[path]) if path in self.bodies else b"{}"
        await Response(content, status_code=status, media_type="application/json")(
            scope, receive, send
        )


def free_port() -> int:
    """A loopback port nobody listens on (until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_receiver(port: int = 0) -> Iterator[Receiver]:
    """A receiver served by uvicorn in a thread, stopped on exit; on `port`, else a free one
    (a receiver can come back on the port of one that was stopped)."""
    receiver = Receiver(port=port)
    if not port:
        receiver.port = free_port()
    config = uvicorn.Config(
        receiver.app,
        host="127.0.0.1",
        port=receiver.port,
        log_level="warning",
        lifespan="off",
        interface="asgi3",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the receiver did not start")
        time.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
