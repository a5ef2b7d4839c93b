"""All configuration in one object: environment variables with the CALLS_ prefix."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    """Service settings; CLI flags override the environment."""

    model_config = SettingsConfigDict(env_prefix="CALLS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/calls.db",
        description="Where calls are stored: sqlite:///relative/path.db or sqlite:////abs/path.db",
    )
    host: str = Field(default="127.0.0.1", description="Interface to listen on")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on")
    log_level: LogLevel = Field(default="info", description="Log level of the service")
    validate_responses: bool = Field(
        default=False, description="Check every response against the spec (tests turn it on)"
    )
    database_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a locked database before 503"
    )
