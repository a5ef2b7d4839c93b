"""Every error becomes one application/problem+json response (RFC 9457), here and only here."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from calls_api.problems import Problem, title_for
from calls_api.routes import methods_for
from calls_api.store import StoreUnavailable

log = logging.getLogger("calls_api.errors")

PROBLEM_JSON = "application/problem+json"


def problem_document(status: int, detail: str | None, path: str, title: str | None = None) -> bytes:
    """The body of every error this service answers (RFC 9457)."""
    return orjson.dumps(
        {
            "type": "about:blank",
            "title": title or title_for(status),
            "status": status,
            "detail": detail or title or title_for(status),
            "instance": path,
        }
    )


def problem_response(
    request: ConnexionRequest,
    status: int,
    detail: str | None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ConnexionResponse:
    """The one shape of every error this service answers."""
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return ConnexionResponse(
        status_code=status,
        mimetype=PROBLEM_JSON,
        content_type=PROBLEM_JSON,
        body=problem_document(status, detail, request.url.path, title),
        headers=all_headers,
    )


def _own_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, Problem)
    if exc.status >= 500:
        log.error("%s: %s", exc.title, exc.detail)
    return problem_response(request, exc.status, exc.detail, title=exc.title, headers=exc.headers)


def _connexion_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, ProblemException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if detail:
        # jsonschema appends the failing schema and instance; the first paragraph says it all.
        detail = detail.split("\n\n", 1)[0]
    return problem_response(request, exc.status, detail, title=exc.title, headers=exc.headers)


def _http_exception(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != title_for(exc.status_code) else None
    if exc.status_code == 404 and detail is None:
        detail = f"There is no resource at {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Every method the spec declares on the path, not only those of the route Starlette
        # happened to try first.
        headers["Allow"] = ", ".join(sorted(methods_for(request.url.path)))
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return problem_response(request, exc.status_code, detail, headers=headers)


def _store_unavailable(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.error("database unavailable: %s", exc)
    return problem_response(
        request,
        503,
        "The database is not reachable right now; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _not_utf8(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    return problem_response(request, 400, "The request body is not valid UTF-8 text.")


def _unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    # The client learns nothing about the cause; the log keeps the traceback.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "The server could not complete the request.")


def install_error_handlers(app: AsyncApp) -> None:
    """Register the renderers; the most specific exception class wins."""
    app.add_error_handler(Problem, _own_problem)
    app.add_error_handler(ProblemException, _connexion_problem)
    app.add_error_handler(HTTPException, _http_exception)
    app.add_error_handler(StoreUnavailable, _store_unavailable)
    app.add_error_handler(UnicodeDecodeError, _not_utf8)
    app.add_error_handler(Exception, _unexpected)
