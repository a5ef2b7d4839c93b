"""Rate limits per API key and per account: a 429 problem with Retry-After past the budget.

Requests are counted in fixed windows (the `limits` library): at most `per_key` requests in
`window` seconds for one key and `per_account` for all keys of an account. A window starts
with the first request counted in it, and the whole budget may be used as a burst. Counts are
exact, so Retry-After says when the window ends. They live in this process, or in Redis when a
URL is given, so that every instance of the service draws on the same budget (INCR and EXPIRE
in one Lua script: one atomic round trip per budget checked).

The in-process counters need no threads: `limits`' moving window keeps its in-memory events
tidy in worker threads, which a request would then wait for behind slow DNS look-ups.

If Redis cannot be reached, each instance counts on its own until it answers again: limits
keep holding per instance, and an outage of Redis neither stops the API nor slows it down
(a short socket timeout, and Redis is not asked again for `REDIS_RETRY_SECONDS`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis.asyncio
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

from calls_api.problems import Problem
from calls_api.settings import Settings

log = logging.getLogger("calls_api.ratelimit")

# How long a Redis that failed is left alone before it is asked again.
REDIS_RETRY_SECONDS = 5.0
# Seconds to wait for Redis to connect or answer before counting locally instead.
REDIS_TIMEOUT_SECONDS = 0.25


class TooManyRequests(Problem):
    """The key or its account used up its request budget for now."""

    status = 429
    title = "Too Many Requests"


@dataclass(frozen=True)
class Budget:
    """One limit: `amount` requests per `window` seconds for each of `scope`'s identifiers."""

    scope: str
    amount: int
    window: int

    @property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.window, namespace=self.scope)


class _Counter:
    """A limits storage and its strategy, made on first use in the running event loop."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._pool: redis.asyncio.ConnectionPool | None = None
        self._limiter: FixedWindowRateLimiter | None = None

    def limiter(self) -> FixedWindowRateLimiter:
        if self._limiter is None:
            storage: Storage
            if self.redis_url:
                self._pool = redis.asyncio.ConnectionPool.from_url(
                    self.redis_url,
                    socket_timeout=REDIS_TIMEOUT_SECONDS,
                    socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                )
                storage = RedisStorage(
                    "async+" + self.redis_url,
                    implementation="redispy",
                    key_prefix=self.prefix,
                    wrap_exceptions=True,
                    # Documented, though its options are typed as scalars: our own pool, so
                    # its timeouts are ours and close() can release its connections.
                    connection_pool=self._pool,  # type: ignore[arg-type]
                )
            else:
                storage = MemoryStorage()
            self._limiter = FixedWindowRateLimiter(storage)
        return self._limiter

    async def close(self) -> None:
        self._limiter = None
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


class RateLimiter:
    """Checks each authenticated request against the key's and the account's budgets."""

    def __init__(
        self,
        *,
        per_key: int,
        per_account: int,
        window: int,
        redis_url: str | None = None,
        redis_prefix: str = "calls-api",
    ) -> None:
        self.budgets = tuple(
            Budget(scope, amount, window)
            for scope, amount in (("key", per_key), ("account", per_account))
            if amount > 0
        )
        prefix = f"{redis_prefix}:ratelimit"
        self._shared = _Counter(redis_url, prefix) if redis_url else None
        self._local = _Counter(None, prefix)
        self._redis_down_until = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            per_key=settings.rate_limit_per_key,
            per_account=settings.rate_limit_per_account,
            window=settings.rate_limit_window,
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.budgets)

    @property
    def shared(self) -> bool:
        """Whether counts are shared through Redis right now (not fallen back to local)."""
        return self._shared is not None and time.monotonic() >= self._redis_down_until

    async def check(self, account_sid: str, key_prefix: str) -> None:
        """Count one request; raise TooManyRequests when a budget is used up.

        The key's budget is checked first, so a key over its own limit does not eat into
        what its account's other keys may still do.
        """
        for budget in self.budgets:
            identifier = key_prefix if budget.scope == "key" else account_sid
            retry_after = await self._hit(budget, identifier)
            if retry_after is not None:
                who = "API key" if budget.scope == "key" else "account"
                raise TooManyRequests(
                    f"This {who} may make {budget.amount} requests in {budget.window} seconds; "
                    f"retry after {retry_after} seconds",
                    headers={
                        "Retry-After": str(retry_after),
                        "RateLimit-Limit": str(budget.amount),
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(retry_after),
                    },
                )

    async def _hit(self, budget: Budget, identifier: str) -> int | None:
        """None when the request fits in the budget, else whole seconds until it would."""
        if self._shared is not None and self.shared:
            try:
                return await _hit_with(self._shared.limiter(), budget, identifier)
            except StorageError as exc:
                self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS
                log.warning(
                    "rate limits: Redis is not reachable (%s); counting in this process "
                    "for the next %.0f seconds",
                    exc.storage_error,
                    REDIS_RETRY_SECONDS,
                )
        return await _hit_with(self._local.limiter(), budget, identifier)

    async def close(self) -> None:
        """Drop the counters and close the Redis connections (a restart counts afresh)."""
        if self._shared is not None:
            await self._shared.close()
        await self._local.close()


async def _hit_with(limiter: FixedWindowRateLimiter, budget: Budget, identifier: str) -> int | None:
    item = budget.item
    if await limiter.hit(item, identifier):
        return None
    stats = await limiter.get_window_stats(item, identifier)
    return max(1, math.ceil(stats.reset_time - time.time()))
