"""Liveness and readiness probes."""

from __future__ import annotations

from calls_api.context import Context
from calls_api.results import Ok
from generated import models


async def get_health(ctx: Context) -> Ok[models.Health]:
    """Alive while the process answers; touches nothing else."""
    return Ok(models.Health(status=models.HealthStatus.ok))


async def get_ready(ctx: Context) -> Ok[models.Health]:
    """Ready when the database answers (StoreUnavailable becomes a 503 problem)."""
    await ctx.store.ping()
    return Ok(models.Health(status=models.HealthStatus.ready))
