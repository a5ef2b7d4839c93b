"""All configuration in one object: environment variables with the CALLS_ prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Service settings; CLI flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="CALLS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/calls.db",
        description="Where calls are stored: sqlite:///relative/path.db, sqlite:////abs/path.db "
        "or postgresql://user:password@host:5432/database",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on")
    docs_page: Path = Field(
        default=Path("dist/docs/index.html"),
        description="The API reference page served at /v1/docs/ (written by make docs / publish)",
    )
    log_level: LogLevel = Field(default="info", description="Log level of the service")
    validate_responses: bool = Field(
        default=False, description="Check every response against the spec (tests turn it on)"
    )
    compiled_dispatch: bool = Field(
        default=True,
        description="Serve requests that pass every check through the compiled dispatch "
        "(calls_api/fastpath/dispatch.py); off, connexion's own chain serves every request",
    )
    database_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds any database operation may take (connecting included) before 503",
    )
    database_pool_size: int = Field(
        default=10, ge=1, le=1000, description="PostgreSQL: most connections one process opens"
    )
    workers: int = Field(default=1, ge=1, le=64, description="Service processes `serve` runs")
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an instance holds a claimed call step or event delivery; when it "
        "dies, another takes the work over after this. Must exceed hook and webhook timeouts",
    )
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="The largest request body accepted (else 413)"
    )
    allow_private_webhooks: bool = Field(
        default=False,
        description="Allow answer_url and event_url on loopback, private or internal addresses",
    )
    hook_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for answer_url to reply"
    )
    webhook_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for event_url to reply"
    )
    webhook_max_attempts: int = Field(
        default=10, ge=1, le=100, description="Tries per status event before giving up"
    )
    webhook_retry_base: float = Field(
        default=1.0, gt=0, description="Seconds before the first retry; doubles each time"
    )
    webhook_retry_max: float = Field(
        default=300.0, gt=0, description="The longest wait between two tries"
    )
    engine_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="Longest the engine sleeps between looks at due work"
    )
    sim_trying_seconds: float = Field(
        default=0.5, ge=0, description="Simulated carrier: seconds from trying to ringing"
    )
    sim_ring_seconds: float = Field(
        default=3.0, ge=0, description="Simulated carrier: seconds a call rings before answer"
    )
    sim_talk_seconds: float = Field(
        default=5.0, ge=0, description="Simulated carrier: seconds talked before a hangup verb"
    )
    rate_limit_per_key: int = Field(
        default=6000,
        ge=0,
        description="Requests one API key may make per rate_limit_window seconds (0: no limit)",
    )
    rate_limit_per_account: int = Field(
        default=12000,
        ge=0,
        description="Requests all keys of one account may make per window (0: no limit)",
    )
    rate_limit_window: int = Field(
        default=60, ge=1, le=86400, description="Seconds over which requests are counted"
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db: rate limits shared by every instance (else per process)",
    )
    redis_prefix: str = Field(
        default="calls-api", min_length=1, description="Prefix of every key kept in Redis"
    )

    @model_validator(mode="after")
    def _lease_outlasts_a_step(self) -> Settings:
        longest = max(self.hook_timeout, self.webhook_timeout)
        if self.lease_seconds <= longest:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must exceed hook_timeout and "
                f"webhook_timeout ({longest:g}): a step still running when its lease ends "
                "could be done twice"
            )
        return self
