"""The four stacks, how to serve each, and the requests every one of them answers."""

from __future__ import annotations

import orjson

# name -> (label, what `python -m bench.serve` or the service's own CLI imports)
STACKS: dict[str, str] = {
    "service": "(a) this service",
    "starlette": "(b) Starlette + pydantic",
    "fastapi": "(c) FastAPI, async deps",
    "connexion": "(d) stock connexion",
}
APP_MODULES = {
    "starlette": "bench.apps.starlette_app",
    "fastapi": "bench.apps.fastapi_app",
    "connexion": "bench.apps.connexion_stock",
}

# A destination ending in 0503 fails right after trying: the engine does its usual work for
# each created call (two status changes) but never contacts answer_url.
CREATE_BODY = orjson.dumps(
    {
        "from": "+15550000000",
        "to": "+15550000503",
        "answer_url": "http://127.0.0.1:9/answer",
        "tag": {"bench": True},
    }
)

# Environment shared by every server: the service as `make serve` runs it.
BASE_ENV = {
    "CALLS_ALLOW_PRIVATE_WEBHOOKS": "true",
    "CALLS_LOG_LEVEL": "info",
    "CALLS_VALIDATE_RESPONSES": "false",
    # The rate limits stay on (their check is part of every request's cost) but with budgets
    # no run of the bench reaches: one key drives thousands of requests a second here.
    "CALLS_RATE_LIMIT_PER_KEY": "1000000000",
    "CALLS_RATE_LIMIT_PER_ACCOUNT": "1000000000",
}
