"""`make publish`: write dist/ from the spec, after the breaking-change gate.

`python -m calls_api.publish` writes dist/openapi.yaml, dist/openapi.json, dist/CHANGELOG.md
and dist/SHA256SUMS, and records the published spec in spec/published/. `--check` only
compares the spec with what was published last and fails on a breaking change that the
version does not announce (what `make check` runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from calls_api.codegen.spec_source import SpecError, load_spec
from calls_api.publish.compare import Change, compare

SPEC = Path("spec/openapi.yaml")
PUBLISHED = Path("spec/published")
DIST = Path("dist")
# Extensions that only steer this implementation; consumers never see them.
IMPLEMENTATION_EXTENSIONS = frozenset(
    {"x-openapi-router-controller", "x-bearerInfoFunc", "x-body-name", "x-codegen"}
)


class Refused(Exception):
    """The spec cannot be published as it is; the message says why."""


def bundle(spec: dict[str, Any]) -> dict[str, Any]:
    """The document consumers get: implementation extensions stripped, order kept."""
    if isinstance(spec, dict):
        return {k: bundle(v) for k, v in spec.items() if k not in IMPLEMENTATION_EXTENSIONS}
    if isinstance(spec, list):
        return [bundle(item) for item in spec]
    return spec


def major(version: str) -> int:
    try:
        return int(version.split(".", 1)[0])
    except ValueError as exc:
        raise Refused(f"info.version {version!r} is not a semantic version") from exc


def gate(old: dict[str, Any] | None, new: dict[str, Any], *, publishing: bool) -> list[Change]:
    """The changes since the last publication; Refused where the version does not fit them."""
    if old is None:
        return []
    changes = compare(old, new)
    old_version, new_version = str(old["info"]["version"]), str(new["info"]["version"])
    breaking = [change for change in changes if change.breaking]
    if breaking and major(new_version) <= major(old_version):
        raise Refused(
            f"breaking changes need a new major version (published {old_version}, "
            f"spec says {new_version}):\n" + "\n".join(f"  {change}" for change in breaking)
        )
    if publishing and changes and new_version == old_version:
        raise Refused(
            f"the spec changed since {old_version} was published; raise info.version:\n"
            + "\n".join(f"  {change}" for change in changes)
        )
    return changes


def changelog_entry(version: str, changes: list[Change], first: bool) -> str:
    """The Markdown entry for one version, grouped as Keep a Changelog does."""
    lines = [f"## {version}", ""]
    if first:
        lines += ["First published version.", ""]
    groups = {
        "Removed": [c for c in changes if "removed" in c.rule],
        "Deprecated": [c for c in changes if "deprecated" in c.rule],
        "Added": [c for c in changes if "added" in c.rule and not c.breaking],
        "Changed": [
            c
            for c in changes
            if not any(word in c.rule for word in ("removed", "deprecated"))
            and not ("added" in c.rule and not c.breaking)
        ],
    }
    for title in ("Added", "Changed", "Deprecated", "Removed"):
        if groups[title]:
            lines += [f"### {title}", ""]
            lines += [f"- {change}" for change in groups[title]]
            lines.append("")
    return "\n".join(lines)


def publish(root: Path) -> list[str]:
    """Write dist/ and spec/published/; returns the files written."""
    spec = bundle(load_spec(root / SPEC))
    published_file = root / PUBLISHED / "openapi.json"
    old = json.loads(published_file.read_text()) if published_file.exists() else None
    changes = gate(old, spec, publishing=True)
    version = str(spec["info"]["version"])
    history_file = root / PUBLISHED / "CHANGELOG.md"
    history = history_file.read_text() if history_file.exists() else "# Changelog\n\n"
    if old is None or changes:
        header, _, rest = history.partition("\n\n")
        entry = changelog_entry(version, changes, first=old is None)
        history = f"{header}\n\n{entry}\n{rest}".rstrip("\n") + "\n"
    as_json = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    as_yaml = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100)
    dist = root / DIST
    dist.mkdir(exist_ok=True)
    outputs = {"openapi.json": as_json, "openapi.yaml": as_yaml, "CHANGELOG.md": history}
    for name, text in outputs.items():
        (dist / name).write_text(text, encoding="utf-8")
    sums = "".join(
        f"{hashlib.sha256((dist / name).read_bytes()).hexdigest()}  {name}\n"
        for name in sorted(outputs)
    )
    (dist / "SHA256SUMS").write_text(sums)
    (root / PUBLISHED).mkdir(parents=True, exist_ok=True)
    published_file.write_text(as_json, encoding="utf-8")
    history_file.write_text(history, encoding="utf-8")
    return [f"dist/{name}" for name in [*sorted(outputs), "SHA256SUMS"]]


def check(root: Path) -> list[Change]:
    """Compare the spec with the last published one; Refused on an unannounced break."""
    spec = bundle(load_spec(root / SPEC))
    published_file = root / PUBLISHED / "openapi.json"
    old = json.loads(published_file.read_text()) if published_file.exists() else None
    return gate(old, spec, publishing=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calls_api.publish", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only run the breaking-change gate")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.check:
            changes = check(root)
            print(f"publish: {len(changes)} change(s) since the last publication, none unannounced")
            return 0
        for name in publish(root):
            print(f"publish: wrote {name}")
    except (Refused, SpecError) as exc:
        print(f"publish: refused\n{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
