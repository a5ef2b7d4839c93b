"""Measurements without a network: each stack called directly as an ASGI app.

python -m bench.inprocess cost STACK N       microseconds per create and per retrieve
python -m bench.inprocess profile STACK N    the same under pyinstrument (text to stdout)
python -m bench.inprocess breakdown STACK N  where a request's time goes, by library
python -m bench.inprocess rss N              the service's RSS as N calls are created
python -m bench.inprocess webhooks N         status events delivered per second

Each prints one JSON object on its last line. Every run uses a new database in a temporary
folder, made from the environment (CALLS_*) the way the service reads it.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psutil

from bench.setup_db import new_account
from bench.stacks import APP_MODULES, BASE_ENV, CREATE_BODY

Message = dict[str, Any]


async def _prepare_env(folder: str) -> tuple[str, str]:
    path = os.path.join(folder, "calls.db")
    os.environ.update(BASE_ENV)
    os.environ["CALLS_DATABASE_URL"] = f"sqlite:///{path}"
    return await new_account(path)


def load(stack: str) -> tuple[Any, Any]:
    """(ASGI app, its Services), built as the server would build them."""
    if stack == "service":
        from calls_api.access_log import configure_logging
        from calls_api.app import create_app
        from calls_api.services import Services
        from calls_api.settings import Settings

        settings = Settings()
        # As `calls-api serve` configures logging: one access line per request, at INFO.
        configure_logging(settings.log_level, open(os.devnull, "w"))  # noqa: SIM115
        services = Services(settings)
        return create_app(settings, services), services
    module = importlib.import_module(APP_MODULES[stack])
    return module.app, module.services


async def call(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    """One request straight into the app; its status and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            *headers,
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Client:
    """Creates and retrieves calls of one account through an app, checking every answer."""

    def __init__(self, app: Any, account_sid: str, api_key: str) -> None:
        self.app = app
        self.calls_path = f"/v1/Accounts/{account_sid}/Calls"
        auth = (b"authorization", f"Bearer {api_key}".encode())
        self.post_headers = [auth, (b"content-type", b"application/json")]
        self.get_headers = [auth]

    async def create(self) -> str:
        status, body = await call(self.app, "POST", self.calls_path, self.post_headers, CREATE_BODY)
        if status != 201:
            raise RuntimeError(f"create answered {status}: {body[:300]!r}")
        return str(orjson.loads(body)["call_sid"])

    async def retrieve(self, call_sid: str) -> None:
        status, body = await call(
            self.app, "GET", f"{self.calls_path}/{call_sid}", self.get_headers
        )
        if status != 200:
            raise RuntimeError(f"retrieve answered {status}: {body[:300]!r}")


GROUPS = (
    ("/connexion/", "connexion"),
    ("/fastapi/", "fastapi"),
    ("/starlette/", "starlette"),
    ("/werkzeug/", "werkzeug"),
    ("/jsonschema", "jsonschema"),
    ("/referencing/", "jsonschema"),
    ("/pydantic", "pydantic"),
    ("/logging/", "logging"),
    ("/calls_api/store/", "store (SQLite)"),
    ("/calls_api/access_log", "access log"),
    ("/calls_api/engine/", "engine"),
    ("/calls_api/", "service web code"),
    ("/generated/", "service web code"),
    ("/handlers/", "handlers"),
    ("/bench/apps/", "comparison app code"),
    ("/bench/", "benchmark driver"),
)


def _group(path: str | None, inherited: str) -> str:
    if not path or path.startswith("<"):
        return inherited  # a built-in: counted with its caller
    for part, name in GROUPS:
        if part in path:
            return name
    return "other"


def _self_times(frame: Any, inherited: str, totals: dict[str, float]) -> None:
    group = _group(frame.file_path, inherited)
    children = list(frame.children)
    own = frame.time - sum(child.time for child in children)
    totals[group] = totals.get(group, 0.0) + own
    for child in children:
        _self_times(child, group, totals)


@asynccontextmanager
async def _warmed(stack: str, n: int) -> AsyncIterator[tuple[Client, str]]:
    """A client of `stack` on a fresh database, warmed up, and a call it can retrieve."""
    with tempfile.TemporaryDirectory(prefix="calls-bench-") as folder:
        account_sid, key = await _prepare_env(folder)
        app, services = load(stack)
        await services.start()
        try:
            client = Client(app, account_sid, key)
            sid = await client.create()
            for _ in range(min(n, 300)):  # warm-up
                await client.create()
                await client.retrieve(sid)
            yield client, sid
        finally:
            await services.stop()


async def _breakdown(stack: str, n: int) -> dict[str, Any]:
    """Sampled profile of n creates and n retrieves: the share of each library."""
    from pyinstrument import Profiler

    result: dict[str, Any] = {"stack": stack, "requests": n}
    async with _warmed(stack, n) as (client, sid):
        for operation in ("create", "retrieve"):
            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            for _ in range(n):
                if operation == "create":
                    await client.create()
                else:
                    await client.retrieve(sid)
            profiler.stop()
            totals: dict[str, float] = {}
            root = profiler.last_session.root_frame() if profiler.last_session else None
            if root is not None:
                _self_times(root, "other", totals)
            whole = sum(totals.values()) or 1.0
            result[operation] = {
                group: round(100 * seconds / whole, 1)
                for group, seconds in sorted(totals.items(), key=lambda item: -item[1])
                if seconds / whole >= 0.005
            }
    return result


async def _cost(stack: str, n: int, profile: bool) -> dict[str, Any]:
    async with _warmed(stack, n) as (client, sid):
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001, async_mode="disabled")
            profiler.start()
        # CPU time of this process: what a request costs, whatever else the machine runs.
        started = time.process_time()
        for _ in range(n):
            await client.create()
        created = time.process_time()
        for _ in range(n):
            await client.retrieve(sid)
        retrieved = time.process_time()
        if profiler is not None:
            profiler.stop()
            print(
                profiler.output_text(
                    unicode=False,
                    color=False,
                    show_all=os.environ.get("BENCH_PROFILE_ALL") == "1",
                )
            )
    return {
        "stack": stack,
        "requests": n,
        "create_us": round((created - started) / n * 1e6, 1),
        "retrieve_us": round((retrieved - created) / n * 1e6, 1),
    }


async def _rss(n: int) -> dict[str, Any]:
    process = psutil.Process()
    checkpoints = sorted({n // 10, n // 4, n // 2, n})
    with tempfile.TemporaryDirectory(prefix="calls-bench-") as folder:
        account_sid, key = await _prepare_env(folder)
        app, services = load("service")
        await services.start()
        samples: list[dict[str, float]] = []
        started = time.perf_counter()
        try:
            client = Client(app, account_sid, key)
            for done in range(1, n + 1):
                await client.create()
                if done in checkpoints:
                    await asyncio.sleep(0)  # let the engine take its turn
                    samples.append(
                        {"calls": done, "rss_mb": round(process.memory_info().rss / 2**20, 1)}
                    )
        finally:
            await services.stop()
        elapsed = time.perf_counter() - started
    first, last = samples[0], samples[-1]
    return {
        "calls": n,
        "seconds": round(elapsed, 1),
        "samples": samples,
        "growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "growth_kb_per_1000_calls": round(
            (last["rss_mb"] - first["rss_mb"]) * 1024 / ((last["calls"] - first["calls"]) / 1000),
            2,
        ),
    }


async def _webhooks(n: int) -> dict[str, Any]:
    from tests.receiver import running_receiver

    with tempfile.TemporaryDirectory(prefix="calls-bench-") as folder, running_receiver() as rx:
        account_sid, key = await _prepare_env(folder)
        os.environ["CALLS_SIM_TRYING_SECONDS"] = "0"
        os.environ["CALLS_ENGINE_POLL_SECONDS"] = "0.05"
        app, services = load("service")
        await services.start()
        body = orjson.loads(CREATE_BODY)
        body["event_url"] = rx.url("/events")
        body["event_method"] = "POST"
        client = Client(app, account_sid, key)
        payload = orjson.dumps(body)
        expected = 2 * n  # trying, then failed
        try:
            started = time.perf_counter()
            for _ in range(n):
                status, answer = await call(
                    app, "POST", client.calls_path, client.post_headers, payload
                )
                if status != 201:
                    raise RuntimeError(f"create answered {status}: {answer[:300]!r}")
            deadline = started + 120
            while time.perf_counter() < deadline:  # the receiver runs in a thread
                if len(rx.received("/events")) >= expected:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
        finally:
            await services.stop()
        delivered = len(rx.received("/events"))
    return {
        "calls": n,
        "events_expected": expected,
        "events_delivered": delivered,
        "seconds": round(elapsed, 2),
        "events_per_second": round(delivered / elapsed, 1),
    }


def main(argv: list[str]) -> int:
    what = argv[0]
    if what in ("cost", "profile"):
        result = asyncio.run(_cost(argv[1], int(argv[2]), profile=what == "profile"))
    elif what == "breakdown":
        result = asyncio.run(_breakdown(argv[1], int(argv[2])))
    elif what == "rss":
        result = asyncio.run(_rss(int(argv[1])))
    elif what == "webhooks":
        result = asyncio.run(_webhooks(int(argv[1])))
    else:
        raise SystemExit(__doc__)
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
