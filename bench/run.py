"""`make bench`: the service against bare Starlette, FastAPI and stock connexion.

Each stack runs alone under uvicorn (one worker) pinned to one core; wrk, pinned to the
other, drives create and retrieve at 1 and 32 connections. Stacks alternate within each
round (A B C D A B C D ...), every measurement follows a warm-up that is not counted, and
each figure is the median over rounds. Then the measurements without a network.
Writes bench/results/latest.{json,md,png} and the README's Performance section.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.report import write_all
from bench.setup_db import fresh_account
from bench.stacks import APP_MODULES, BASE_ENV, CREATE_BODY, STACKS

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "5"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "2" if QUICK else "3"))
WARMUP = 1
CONNECTIONS = (1, 32)
SERVER_CORE, LOAD_CORE = "1", "0"
RSS_CALLS = 10_000 if QUICK else 100_000
WEBHOOK_CALLS = 200 if QUICK else 1_000
COST_REQUESTS = 500 if QUICK else 2_000


def _wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        sys.exit(
            "make bench needs wrk, the HTTP load generator: install it with "
            "`apt-get install wrk` (Debian/Ubuntu) and run make bench again."
        )
    return wrk


def _pinned(core: str) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", core]
    return []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One stack under uvicorn on a fresh database."""

    def __init__(self, stack: str, folder: Path) -> None:
        self.stack = stack
        self.port = _free_port()
        db = folder / f"{stack}-{time.monotonic_ns()}.db"
        self.account_sid, self.key = fresh_account(str(db))
        env = {**os.environ, **BASE_ENV, "CALLS_DATABASE_URL": f"sqlite:///{db}"}
        if stack == "service":
            command = [str(BIN / "calls-api"), "serve", "--port", str(self.port)]
        else:
            command = [str(BIN / "python"), "-m", "bench.serve", stack, str(self.port)]
        self.log = (folder / f"{stack}.log").open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(  # noqa: S603 - our own commands
            _pinned(SERVER_CORE) + command, cwd=ROOT, env=env, stdout=self.log, stderr=self.log
        )
        self.base = f"http://127.0.0.1:{self.port}/v1/Accounts/{self.account_sid}/Calls"
        self.call_sid = self._first_call(started)
        self.startup_s = self.ready_at - started

    def _first_call(self, started: float) -> str:
        deadline = started + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.stack} exited with {self.process.returncode}")
            try:
                status, body = self.request("POST", self.base, CREATE_BODY)
                break
            except OSError:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.02)
        self.ready_at = time.perf_counter()
        if status != 201:
            raise RuntimeError(f"{self.stack}: create answered {status}: {body[:300]!r}")
        status, body = self.request("GET", f"{self.base}/{json.loads(body)['call_sid']}")
        if status != 200:
            raise RuntimeError(f"{self.stack}: retrieve answered {status}: {body[:300]!r}")
        return str(json.loads(body)["call_sid"])

    def request(self, method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.key}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                return int(answer.status), answer.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read()

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            return round(int(match.group(1)) / 1024, 1)
        rss: int = psutil.Process(self.process.pid).memory_info().rss
        return round(rss / 2**20, 1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _load(server: Server, operation: str, connections: int, seconds: int) -> dict[str, Any]:
    url = server.base if operation == "create" else f"{server.base}/{server.call_sid}"
    env = {**os.environ, "BENCH_KEY": server.key, "BENCH_BODY": CREATE_BODY.decode()}
    script = ROOT / "bench" / "wrk" / f"{operation}.lua"
    command = [
        *_pinned(LOAD_CORE),
        _wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(  # noqa: S603
        command, env=env, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    raw = json.loads(line[len("BENCH ") :])
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "errors": errors,
        "requests": raw["requests"],
    }


def _scenarios() -> list[tuple[str, int]]:
    return [(op, c) for op in ("create", "retrieve") for c in CONNECTIONS]


def run_rounds(folder: Path) -> dict[str, Any]:
    """Every stack, every scenario, ROUNDS times, stacks alternating."""
    rounds: list[dict[str, Any]] = []
    for number in range(1, ROUNDS + 1):
        this_round: dict[str, Any] = {}
        for stack in STACKS:
            server = Server(stack, folder)
            try:
                results: dict[str, Any] = {"startup_s": round(server.startup_s, 3)}
                for operation, connections in _scenarios():
                    _load(server, operation, connections, WARMUP)  # warm-up, not counted
                    result = _load(server, operation, connections, SECONDS)
                    result["peak_rss_mb"] = server.peak_rss_mb()
                    results[f"{operation}@{connections}"] = result
                    print(
                        f"round {number} {stack:9} {operation:8} c={connections:<2} "
                        f"{result['rps']:9.1f} req/s p50 {result['p50_ms']:.2f} ms "
                        f"p99 {result['p99_ms']:.2f} ms errors {result['errors']}",
                        flush=True,
                    )
            finally:
                server.stop()
            this_round[stack] = results
        rounds.append(this_round)
    return {"per_round": rounds, "summary": summarize(rounds)}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per stack and scenario: the median of each figure and of its ratio to (b) and (c),
    each ratio taken within a round."""
    summary: dict[str, Any] = {}
    for stack in STACKS:
        for operation, connections in _scenarios():
            key = f"{operation}@{connections}"
            entry: dict[str, Any] = {}
            for figure in ("rps", "p50_ms", "p99_ms", "peak_rss_mb"):
                values = [r[stack][key][figure] for r in rounds]
                entry[figure] = round(statistics.median(values), 3)
                for base in ("starlette", "fastapi"):
                    ratios = [r[stack][key][figure] / r[base][key][figure] for r in rounds]
                    entry[f"{figure}_vs_{base}"] = round(statistics.median(ratios), 3)
            entry["errors"] = sum(r[stack][key]["errors"] for r in rounds)
            summary.setdefault(stack, {})[key] = entry
        summary[stack]["startup_s"] = round(
            statistics.median(r[stack]["startup_s"] for r in rounds), 3
        )
    return summary


def _python(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603
        [*_pinned(SERVER_CORE), str(BIN / "python"), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _timed(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "python"), *args], cwd=ROOT, check=True, capture_output=True)  # noqa: S603
    return round(time.perf_counter() - started, 3)


def extras() -> dict[str, Any]:
    """What is measured without load: in-process cost, codegen, memory, webhooks."""
    cost = {
        stack: _python("-m", "bench.inprocess", "cost", stack, str(COST_REQUESTS))
        for stack in STACKS
    }
    print("in-process cost:", cost, flush=True)
    noop = min(_timed("-m", "calls_api.codegen") for _ in range(3))
    cold = min(_timed("-m", "calls_api.codegen", "--force") for _ in range(2))
    generate = {"noop_s": noop, "cold_s": cold}
    print("make generate:", generate, flush=True)
    rss = _python("-m", "bench.inprocess", "rss", str(RSS_CALLS))
    print("RSS:", rss, flush=True)
    webhooks = _python("-m", "bench.inprocess", "webhooks", str(WEBHOOK_CALLS))
    print("webhooks:", webhooks, flush=True)
    breakdown = {
        stack: _python("-m", "bench.inprocess", "breakdown", stack, str(COST_REQUESTS))
        for stack in STACKS
    }
    print("breakdown:", breakdown, flush=True)
    return {
        "inprocess": cost,
        "generate": generate,
        "rss": rss,
        "webhooks": webhooks,
        "breakdown": breakdown,
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    wrk_version = subprocess.run(  # noqa: S603
        [_wrk(), "--version"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_generator": wrk_version.split(" [")[0].strip() or "wrk",
        "pinning": f"server on core {SERVER_CORE}, wrk on core {LOAD_CORE}"
        if _pinned("0")
        else "none",
    }


def main() -> int:
    _wrk()
    started = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="calls-bench-") as folder:
        measured = run_rounds(Path(folder))
    extra = extras()
    load_after = os.getloadavg()
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "quick": QUICK,
        "rounds": ROUNDS,
        "seconds_per_measurement": SECONDS,
        "warmup_seconds": WARMUP,
        "stacks": STACKS,
        "apps": {"service": "calls-api serve", **APP_MODULES},
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_after},
        "took_s": round(time.time() - started, 1),
        **measured,
        **extra,
    }
    write_all(results, ROOT)
    errors = sum(
        entry["errors"]
        for per_stack in results["summary"].values()
        for entry in per_stack.values()
        if isinstance(entry, dict)
    )
    if errors:
        print(f"{errors} requests failed: see bench/results/latest.md", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
