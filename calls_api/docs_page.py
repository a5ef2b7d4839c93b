"""/v1/docs/: the offline API reference page that `make docs` (and `make publish`) writes.

The page is built by Redocly CLI, which needs Node.js, so the service does not build it; it
serves the file named by CALLS_DOCS_PAGE and answers a 404 problem saying how to build it when
the file is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from calls_api.problems import NotFound, Problem
from calls_api.publish.docs import DOCS_CSP

Endpoint = Callable[[Request], Response]
READ = ("GET", "HEAD")
# Every other method gets a 405 naming the two that work, as the API's own paths do.
OTHER = ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class MethodNotAllowed(Problem):
    """The reference page is only read."""

    status = 405
    title = "Method Not Allowed"


def docs_routes(base_path: str, page: Path) -> list[tuple[str, Endpoint, tuple[str, ...]]]:
    """(path, endpoint, methods) for the page, the path without its slash, and a 405 for
    the other methods. The endpoints are plain functions: Starlette runs them in its thread
    pool, off the event loop."""

    def docs(_request: Request) -> Response:
        if not page.is_file():
            raise NotFound(
                f"The API reference page has not been built ({page} is missing): run "
                "`make docs` (or `make publish`), which writes it with Redocly CLI. The spec "
                f"itself is at {base_path}/openapi.json and Swagger UI at {base_path}/ui/."
            )
        return FileResponse(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": DOCS_CSP},
        )

    def to_slash(_request: Request) -> Response:
        return RedirectResponse(f"{base_path}/docs/", status_code=308)

    def not_allowed(request: Request) -> Response:
        allowed = ", ".join(READ)
        raise MethodNotAllowed(
            f"{request.method} is not allowed here; allowed: {allowed}", headers={"Allow": allowed}
        )

    return [
        (f"{base_path}/docs/", docs, READ),
        (f"{base_path}/docs", to_slash, READ),
        (f"{base_path}/docs/", not_allowed, OTHER),
        (f"{base_path}/docs", not_allowed, OTHER),
    ]
