"""`make generate`: validate the spec, build the model, render into a temporary folder,
then swap it in whole. A failure at any step leaves generated/ as it was."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError

from calls_api.codegen import stamp
from calls_api.codegen.ir import Api, build_api
from calls_api.codegen.model_view import model_view
from calls_api.codegen.render import HEADER, render_generated, template_environment
from calls_api.codegen.scaffold import ScaffoldChange, scaffold_handlers
from calls_api.codegen.spec_source import SpecError, load_spec, locate

SPEC = Path("spec/openapi.yaml")


class GenerationError(Exception):
    """A step of the pipeline failed; the message says which and why."""


@dataclass
class GenerationReport:
    """What one run did."""

    changed: list[str] = field(default_factory=list)
    scaffolded: list[ScaffoldChange] = field(default_factory=list)


def build(root: Path, out_dir: Path) -> Api:
    """Generate every file of generated/ into out_dir (which must exist)."""
    spec = load_spec(root / SPEC)
    try:
        api = build_api(spec)
    except SpecError as exc:
        raise locate(root / SPEC, exc) from exc
    _generate_models(root, spec, out_dir)
    try:
        render_generated(api, template_environment(root / "templates"), out_dir)
    except TemplateError as exc:
        where = f"{exc.filename}:{exc.lineno}" if isinstance(exc, TemplateSyntaxError) else ""
        raise GenerationError(f"templates: {where} {type(exc).__name__}: {exc}") from exc
    return api


def generate(root: Path) -> GenerationReport:
    """Regenerate generated/ and scaffold missing handlers; returns what changed."""
    report = GenerationReport()
    target = root / "generated"
    with tempfile.TemporaryDirectory(prefix=".generate-", dir=root) as tmp:
        staged = Path(tmp) / "generated"
        staged.mkdir()
        api = build(root, staged)
        report.changed = _differences(staged, target)
        if report.changed:
            _swap(staged, target)
    env = template_environment(root / "templates")
    report.scaffolded = scaffold_handlers(api, root / "handlers", env)
    stamp.write_stamp(root, {tag.module: [op.name for op in tag.operations] for tag in api.tags})
    return report


def check(root: Path) -> list[str]:
    """The files of generated/ that differ from what the spec and templates produce."""
    # Staged inside the project: datamodel-codegen reads formatting settings near its output.
    with tempfile.TemporaryDirectory(prefix=".generate-check-", dir=root) as tmp:
        staged = Path(tmp)
        build(root, staged)
        return _differences(staged, root / "generated")


def _generate_models(root: Path, spec: dict[str, Any], out_dir: Path) -> None:
    """generated/models.py from the model view of the spec (see model_view)."""
    view = out_dir / "model-view.json"
    view.write_text(json.dumps(model_view(spec), indent=1), encoding="utf-8")
    output = out_dir / "models.py"
    try:
        # The CLI reads [tool.datamodel-codegen] from pyproject.toml in the working directory.
        completed = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [
                sys.executable,
                "-m",
                "datamodel_code_generator",
                "--input",
                str(view),
                "--output",
                str(output),
            ],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        view.unlink()
    if completed.returncode != 0 or not output.exists():
        raise GenerationError(
            "datamodel-code-generator failed:\n" + (completed.stderr or completed.stdout).strip()
        )
    if not output.read_text(encoding="utf-8").startswith(HEADER):
        raise GenerationError("generated/models.py lacks the generated-code header")


def _differences(new: Path, old: Path) -> list[str]:
    names = {p.name for p in new.glob("*.py")} | {p.name for p in old.glob("*.py")}
    return sorted(
        f"generated/{name}"
        for name in names
        if not (new / name).exists()
        or not (old / name).exists()
        or not filecmp.cmp(new / name, old / name, shallow=False)
    )


def _swap(staged: Path, target: Path) -> None:
    """Replace generated/ with the staged folder, keeping the stamp until it is rewritten."""
    retired = target.with_name(".generated.old")
    if retired.exists():
        shutil.rmtree(retired)
    if target.exists():
        target.rename(retired)
    staged.rename(target)
    old_stamp = retired / Path(stamp.STAMP).name
    if old_stamp.exists():
        shutil.copy2(old_stamp, target / old_stamp.name)
    shutil.rmtree(retired, ignore_errors=True)


__all__ = ["GenerationError", "SpecError", "check", "generate"]
