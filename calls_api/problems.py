"""The project's own errors: each becomes one application/problem+json response (RFC 9457).

Raise these anywhere (handlers, store, auth); calls_api.errors renders them in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import ClassVar


class Problem(Exception):
    """An error the client is told about: status, title and a detail a person can act on."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"

    def __init__(self, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(Problem):
    """The request is malformed or breaks a rule the schema cannot express."""

    status = 400
    title = "Bad Request"


class Unauthorized(Problem):
    """No API key, or one that is not valid."""

    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(Problem):
    """A valid key that may not act here."""

    status = 403
    title = "Forbidden"


class NotFound(Problem):
    """No such resource for this account."""

    status = 404
    title = "Not Found"


class Conflict(Problem):
    """The request conflicts with the resource's state."""

    status = 409
    title = "Conflict"


class Unprocessable(Problem):
    """Well-formed, but it cannot be done as asked (an Idempotency-Key reused differently)."""

    status = 422
    title = "Unprocessable Entity"


class Unavailable(Problem):
    """A dependency (the database) cannot be reached; the client may retry."""

    status = 503
    title = "Service Unavailable"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


def title_for(status: int) -> str:
    """The standard reason phrase of a status code."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
