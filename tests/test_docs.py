"""The API reference page: built offline and deterministic by Redocly CLI, linted spec, served
at /v1/docs/, and rendered by a real headless Chromium, from the file and from a real uvicorn.

Chromium is the one named by CALLS_TEST_BROWSER (CI sets it: then a missing browser fails
these tests), else `chromium` when it is installed (else they are skipped).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from calls_api.app import create_app
from calls_api.publish.__main__ import publish_docs
from calls_api.publish.docs import DOCS_CSP, ToolError, lint, remote_references
from calls_api.settings import Settings
from tests.test_serve_smoke import Server

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "spec" / "openapi.yaml").read_text())
OPERATIONS = [
    operation
    for path_item in SPEC["paths"].values()
    for method, operation in path_item.items()
    if method in ("get", "put", "post", "delete", "patch")
]
CALLBACK = SPEC["paths"]["/Accounts/{account_sid}/Calls"]["post"]["callbacks"]["callStatus"][
    "{$request.body#/event_url}"
]["post"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page make publish writes, built twice from a copy of the repository's spec."""
    root = tmp_path_factory.mktemp("docs")
    (root / "spec").mkdir()
    shutil.copy(REPO / "spec" / "openapi.yaml", root / "spec" / "openapi.yaml")
    first = publish_docs(root).read_bytes()
    built = publish_docs(root)
    assert built.read_bytes() == first, "two builds of the same spec differ"
    return built


# --- the page as a file ---------------------------------------------------------------------


def test_the_page_loads_nothing_from_elsewhere(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert remote_references(html) == []
    # Redoc itself is inside the page, and the page's policy forbids loading anything.
    assert "<script>" in html and "Redoc.hydrate(" in html
    assert "cdn.redocly.com" not in html
    assert "fonts.googleapis.com" not in html and "@font-face" not in html
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    assert csp.group(1).replace("&#x27;", "'") == DOCS_CSP
    assert "default-src 'none'" in DOCS_CSP and "http" not in DOCS_CSP


@pytest.mark.parametrize(
    "markup",
    [
        '<script src="https://cdn.example.org/redoc.js"></script>',
        '<link rel="stylesheet" href="//fonts.example.org/css?family=Roboto">',
        "<style>@import url('https://example.org/a.css');</style>",
        "<style>@font-face { src: url(https://example.org/f.woff2) }</style>",
        '<img src="http://example.org/logo.svg">',
    ],
)
def test_a_remote_reference_is_found(markup: str) -> None:
    assert remote_references(f"<html><head>{markup}</head></html>")


def test_the_page_holds_every_operation_schema_and_example(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    for operation in OPERATIONS:
        assert operation["operationId"] in html, operation["operationId"]
        assert operation["summary"] in html, operation["summary"]
    for schema in SPEC["components"]["schemas"]:
        assert schema in html, schema
    for example in SPEC["components"]["examples"].values():
        assert example["summary"] in html, example["summary"]
    assert CALLBACK["summary"] in html
    assert "callStatus" in html


# --- the lint -------------------------------------------------------------------------------


def test_the_spec_passes_the_lint() -> None:
    lint(REPO / "spec" / "openapi.yaml")


def test_a_bad_spec_fails_the_lint(tmp_path: Path) -> None:
    bad = {
        "openapi": "3.0.3",
        "info": {"title": "bad", "version": "1.0.0"},  # no license: a warning made an error
        "paths": {
            "/things": {
                "get": {  # no operationId, no 4xx response, no security
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    spec = tmp_path / "openapi.yaml"
    spec.write_text(yaml.safe_dump(bad))
    with pytest.raises(ToolError) as failed:
        lint(spec)
    report = str(failed.value)
    for rule in ("info-license", "operation-operationId", "operation-4xx-response"):
        assert rule in report, report


# --- served by the service ------------------------------------------------------------------


def test_the_service_serves_the_page_and_redirects_to_it(page: Path, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/calls.db", docs_page=page)
    with TestClient(create_app(settings)) as client:
        served = client.get("/v1/docs/")
        assert served.status_code == 200
        assert served.content == page.read_bytes()
        assert served.headers["content-type"] == "text/html; charset=utf-8"
        assert served.headers["content-security-policy"] == DOCS_CSP
        assert served.headers["x-content-type-options"] == "nosniff"
        assert served.headers["cache-control"] == "no-cache"
        moved = client.get("/v1/docs", follow_redirects=False)
        assert moved.status_code == 308
        assert moved.headers["location"] == "/v1/docs/"
        assert client.head("/v1/docs/").status_code == 200
        for path in ("/v1/docs/", "/v1/docs"):
            refused = client.post(path, json={})
            assert refused.status_code == 405
            assert refused.headers["allow"] == "GET, HEAD"
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["detail"] == "POST is not allowed here; allowed: GET, HEAD"


def test_a_page_never_built_is_a_404_problem_saying_how_to_build_it(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/calls.db", docs_page=tmp_path / "none.html"
    )
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/docs/")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert "make docs" in answer.json()["detail"]


# --- in a real browser ----------------------------------------------------------------------


def browser() -> str:
    """Chromium's executable; skips, or fails when CALLS_TEST_BROWSER asks for it."""
    wanted = os.environ.get("CALLS_TEST_BROWSER")
    found = shutil.which(wanted or "chromium")
    if found is None:
        if wanted:
            pytest.fail(f"CALLS_TEST_BROWSER={wanted} is set but no such browser is installed")
        pytest.skip("no chromium installed (set CALLS_TEST_BROWSER to require it)")
    return found


def render(url: str, profile: Path) -> tuple[str, str]:
    """The DOM Chromium has after running the page's scripts, and its console log.

    Nothing leaves the machine: every host name but 127.0.0.1 fails to resolve, and any
    proxied request goes to a closed loopback port.
    """
    completed = subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--no-pings",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--proxy-server=http://127.0.0.1:9",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout, completed.stderr


def visible_text(dom: str) -> str:
    without_code = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL)
    return " ".join(re.sub(r"<[^>]+>", " ", without_code).split())


def assert_rendered(dom: str, console: str) -> None:
    # The page is prerendered, so its text alone does not show that Redoc ran. The stylesheet
    # that Redoc's styled-components inserts in the browser does.
    markup = re.sub(r"<script\b.*?</script>", " ", dom, flags=re.DOTALL)
    assert '<style data-styled="active"' in markup, "Redoc did not render in the browser"
    text = visible_text(dom)
    for operation in OPERATIONS:
        assert operation["summary"] in text, operation["summary"]
    # The status webhook: the callback's name, its summary and the event it carries.
    assert "callStatus" in text
    assert CALLBACK["summary"] in text
    assert "sequence" in text
    # The page asked for nothing its policy refuses (a remote logo, font or script).
    assert "Content Security Policy" not in console, console[-3000:]


def test_chromium_renders_the_file(page: Path, tmp_path: Path) -> None:
    assert '<style data-styled="active"' not in re.sub(
        r"<script\b.*?</script>", " ", page.read_text(encoding="utf-8"), flags=re.DOTALL
    )
    dom, console = render(page.as_uri(), tmp_path / "profile")
    assert_rendered(dom, console)


def test_chromium_renders_the_page_served_at_v1_docs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser()  # skip before starting a server for nothing
    monkeypatch.setenv("CALLS_DOCS_PAGE", str(page))
    server = Server(tmp_path / "calls.db", tmp_path / "server.log")
    try:
        dom, console = render(f"{server.base}/docs", tmp_path / "profile")
    finally:
        server.stop()
    assert_rendered(dom, console)
    # /v1/docs answered the redirect, /v1/docs/ the page (the access log names only the
    # spec's paths).
    log = server.output()
    assert log.index("GET (unrouted) 308") < log.index("GET (unrouted) 200"), log
