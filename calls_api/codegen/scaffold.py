"""Scaffold handler stubs for operations that have no hand-written function yet.

Only adds: a missing module is created, a missing function is appended, and a name the
stubs need is imported after the module's last import. Existing lines are never changed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment

from calls_api.codegen.ir import Api, Operation, Tag

# Names a stub may use, and where each comes from.
_STUB_IMPORTS = {
    "AccountContext": "calls_api.context",
    "Context": "calls_api.context",
    "Accepted": "calls_api.results",
    "Created": "calls_api.results",
    "NoContent": "calls_api.results",
    "Ok": "calls_api.results",
    "OperationNotImplemented": "calls_api.scaffold",
    "not_implemented": "calls_api.scaffold",
    "models": "generated",
}


@dataclass(frozen=True)
class ScaffoldChange:
    """One handler file the scaffolder wrote, and the functions it added."""

    path: Path
    added: tuple[str, ...]


def scaffold_handlers(api: Api, handlers_dir: Path, env: Environment) -> list[ScaffoldChange]:
    """Add stubs for every operation missing from handlers/<tag>.py; return what changed."""
    changes = []
    for tag in api.tags:
        path = handlers_dir / f"{tag.module}.py"
        change = _scaffold_module(tag, path, env)
        if change:
            changes.append(change)
    return changes


def missing_operations(tag: Tag, source: str) -> list[Operation]:
    """The operations of the tag that the module source does not define."""
    defined = _defined_names(ast.parse(source))
    return [op for op in tag.operations if op.name not in defined]


def _scaffold_module(tag: Tag, path: Path, env: Environment) -> ScaffoldChange | None:
    source = path.read_text(encoding="utf-8") if path.exists() else ""
    if not source:
        source = env.get_template("handler_module.py.jinja").render(tag=tag)
    missing = missing_operations(tag, source)
    if not missing and path.exists():
        return None
    stub_template = env.get_template("handler_stub.py.jinja")
    stubs = "".join(stub_template.render(op=op) for op in missing)
    tree = ast.parse(source)
    needed = sorted((_names_used(stubs) & _STUB_IMPORTS.keys()) - _defined_names(tree))
    imports = "".join(f"from {_STUB_IMPORTS[name]} import {name}\n" for name in needed)
    lines = source.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    at = _after_last_import(tree)
    new_source = "".join(lines[:at]) + imports + "".join(lines[at:]) + stubs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new_source, encoding="utf-8")
    return ScaffoldChange(path=path, added=tuple(op.name for op in missing))


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _after_last_import(tree: ast.Module) -> int:
    """The line index just after the module's last top-level import (or its docstring)."""
    end = 0
    for node in tree.body:
        is_import = isinstance(node, ast.Import | ast.ImportFrom)
        is_docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if is_import or (end == 0 and is_docstring):
            end = node.end_lineno or node.lineno
    return end


def _names_used(code: str) -> set[str]:
    return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
