"""The record of the last generation, so an unchanged tree makes `make generate` a no-op.

Imports only the standard library: the no-op check runs before anything heavy is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib.metadata import version
from pathlib import Path

STAMP = "generated/.stamp.json"
GENERATOR_PACKAGES = ("datamodel-code-generator", "jinja2")


def input_files(root: Path) -> list[Path]:
    """Every file whose content decides what `make generate` writes."""
    files = [root / "spec" / "openapi.yaml", root / "pyproject.toml"]
    files += sorted((root / "templates").glob("*.jinja"))
    files += sorted((root / "calls_api" / "codegen").glob("*.py"))
    return files


def output_files(root: Path) -> list[Path]:
    """Every file `make generate` writes into generated/."""
    return sorted((root / "generated").glob("*.py"))


def digest(paths: list[Path], root: Path) -> dict[str, str]:
    """sha256 of each file, keyed by its path relative to the root."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in paths
        if path.is_file()
    }


def inputs_digest(root: Path) -> str:
    """One hash over every input and the generator versions."""
    combined = hashlib.sha256()
    for name, value in sorted(digest(input_files(root), root).items()):
        combined.update(f"{name}={value}\n".encode())
    for package in GENERATOR_PACKAGES:
        combined.update(f"{package}=={version(package)}\n".encode())
    return combined.hexdigest()


def write_stamp(root: Path, handlers: dict[str, list[str]]) -> None:
    """Record the inputs, the outputs and the handler functions the contract requires."""
    record = {
        "inputs": inputs_digest(root),
        "outputs": digest(output_files(root), root),
        "handlers": handlers,
    }
    (root / STAMP).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def is_up_to_date(root: Path) -> bool:
    """True when nothing changed since the stamp was written and no handler is missing."""
    try:
        record = json.loads((root / STAMP).read_text())
    except (OSError, ValueError):
        return False
    if record.get("inputs") != inputs_digest(root):
        return False
    if record.get("outputs") != digest(output_files(root), root):
        return False
    for module, functions in record.get("handlers", {}).items():
        path = root / "handlers" / f"{module}.py"
        try:
            source = path.read_text(encoding="utf-8")
        except OSError:
            return False
        for name in functions:
            if not re.search(rf"^(async\s+)?def\s+{re.escape(name)}\b", source, re.MULTILINE):
                return False
    return True
