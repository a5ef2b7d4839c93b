"""What a handler knows about the request besides its typed arguments."""

from __future__ import annotations

from dataclasses import dataclass

from calls_api.services import Services
from calls_api.settings import Settings
from calls_api.store import Store


@dataclass(frozen=True, slots=True)
class Context:
    """The request's view of the running service."""

    services: Services

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def settings(self) -> Settings:
        return self.services.settings


@dataclass(frozen=True, slots=True)
class AccountContext(Context):
    """A request authenticated with an API key of `account_sid`."""

    account_sid: str
    key_prefix: str
