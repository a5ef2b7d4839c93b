"""The API reference page and the spec lint, both done by Redocly CLI (pinned in tools/).

`build_docs` renders the bundled spec with `redocly build-docs` (Redoc, prerendered, the spec
inlined) through templates/docs/page.hbs, then puts Redoc's script into the page itself: the
CLI links it from a CDN, and the page must work offline. The script comes from the Redoc
package the CLI depends on, of the very version the CLI links, with one change: its footer
would load Redocly's logo from a CDN; that URL is emptied, so the image fails at once and
Redoc drops it (the footer keeps its text link). The page carries a Content Security Policy
that lets it load nothing from anywhere, and `remote_references` refuses a page whose markup
still names another host.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
CONFIG = REPO / "redocly.yaml"
TEMPLATE = REPO / "templates" / "docs" / "page.hbs"

# What the page may load: its own inline script and styles, images and fonts inlined as data:,
# and the worker Redoc's search starts from a blob:. Nothing from any host, this one included.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; worker-src blob:; connect-src 'none'; "
    "base-uri 'none'; form-action 'none'"
)
# Redocly CLI asks no server anything: no usage data, no check for a newer version.
REDOCLY_ENV = {"REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
REDOC_LOGO = '"https://cdn.redoc.ly/redoc/logo-mini.svg"'
CDN_SCRIPT = re.compile(
    r'<script src="https://cdn\.redocly\.com/redoc/v(?P<version>[0-9][^/"]*)'
    r'/bundles/redoc\.standalone\.js"></script>'
)
# Markup that makes a browser fetch something from elsewhere: a script, stylesheet, image or
# frame by URL, a CSS @import or url() of a remote address (a font among them).
_REMOTE = re.compile(
    r"""<(?:script|link|img|iframe|source|embed)\b[^>]*?\b(?:src|href)\s*=\s*["']?(?:https?:)?//"""
    r"""|@import\s+(?:url\()?\s*["']?(?:https?:)?//"""
    r"""|\burl\(\s*["']?(?:https?:)?//""",
    re.IGNORECASE,
)


class ToolError(Exception):
    """Redocly CLI is missing, failed, or produced something unusable; the message says what."""


def redocly(args: list[str], *, cwd: Path, tools: Path = TOOLS) -> subprocess.CompletedProcess[str]:
    """Run the pinned Redocly CLI."""
    binary = tools / "node_modules" / ".bin" / "redocly"
    if not binary.exists():
        raise ToolError(
            f"Redocly CLI is not installed in {tools.name}/: run `make tools` "
            "(npm ci from tools/package-lock.json; needs Node.js 20.19+ and npm)"
        )
    return subprocess.run(  # noqa: S603 - the pinned binary, arguments from this module
        [str(binary), *args],
        cwd=cwd,
        env={**os.environ, **REDOCLY_ENV, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lint(spec: Path, *, config: Path = CONFIG, tools: Path = TOOLS) -> str:
    """Lint a spec with the project's rules; ToolError with the report on any problem."""
    completed = redocly(
        ["lint", str(spec.resolve()), "--config", str(config), "--lint-config", "error"],
        cwd=spec.parent,
        tools=tools,
    )
    report = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise ToolError(f"redocly lint found problems in {spec.name}:\n{report}")
    return report


def standalone_script(version: str, tools: Path = TOOLS) -> str:
    """Redoc's browser bundle, of exactly the version Redocly CLI links."""
    package = tools / "node_modules" / "redoc"
    installed = json.loads((package / "package.json").read_text())["version"]
    if installed != version:
        raise ToolError(
            f"Redocly CLI links Redoc {version} but tools/ has Redoc {installed}: "
            "pin versions that agree in tools/package.json"
        )
    script = (package / "bundles" / "redoc.standalone.js").read_text(encoding="utf-8")
    if script.count(REDOC_LOGO) != 1:
        raise ToolError(
            f"Redoc {installed} no longer names its logo as {REDOC_LOGO} once: "
            "check what its bundle loads from elsewhere and update calls_api/publish/docs.py"
        )
    script = script.replace(REDOC_LOGO, '""')
    # Inside <script>, only "</script" could end the element early.
    return script.replace("</script", "<\\/script")


def build_docs(bundle: Path, output: Path, *, tools: Path = TOOLS) -> None:
    """Write the offline reference page for a bundled spec file."""
    with tempfile.TemporaryDirectory() as scratch:
        page_file = Path(scratch) / "index.html"
        completed = redocly(
            [
                "build-docs",
                str(bundle.resolve()),
                "--config",
                str(CONFIG),
                "--lint-config",
                "error",
                "--template",
                str(TEMPLATE),
                f"--templateOptions.csp={DOCS_CSP}",
                "--output",
                str(page_file),
            ],
            cwd=Path(scratch),
            tools=tools,
        )
        if completed.returncode != 0 or not page_file.exists():
            raise ToolError(
                f"redocly build-docs failed:\n{(completed.stdout + completed.stderr).strip()}"
            )
        page = page_file.read_text(encoding="utf-8")
    links = CDN_SCRIPT.findall(page)
    if len(links) != 1:
        raise ToolError(f"expected one CDN link to Redoc in the page, found {len(links)}")
    script = f"<script>{standalone_script(links[0], tools)}</script>"
    page = CDN_SCRIPT.sub(lambda _match: script, page)
    remote = remote_references(page)
    if remote:
        raise ToolError("the docs page still loads from elsewhere:\n  " + "\n  ".join(remote))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")


_SCRIPT_BODY = re.compile(r"(<script\b[^>]*>).*?(</script>)", re.IGNORECASE | re.DOTALL)


def remote_references(page: str) -> list[str]:
    """The places in a page's markup and styles that would fetch from another host.

    Script bodies are left out: what they may fetch at run time the page's policy refuses.
    """
    markup = _SCRIPT_BODY.sub(r"\1\2", page)
    return [markup[m.start() : m.start() + 120] for m in _REMOTE.finditer(markup)]
