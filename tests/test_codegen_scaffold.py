"""Scaffolding of handler stubs by make generate, on a small fixture spec in a throwaway root.

Generated and scaffolded code is imported only in subprocesses (cwd and PYTHONPATH set to
the throwaway root), so this process never sees the fixture's `handlers` or `generated`.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calls_api.codegen.__main__ import run
from calls_api.codegen.ir import build_api
from calls_api.codegen.pipeline import GenerationReport, generate
from calls_api.codegen.render import template_environment
from calls_api.codegen.scaffold import scaffold_handlers
from calls_api.codegen.spec_source import load_spec

REPO = Path(__file__).resolve().parents[1]
FIXTURE_SPEC = Path(__file__).resolve().parent / "codegen_fixture" / "openapi.yaml"
ALL_HANDLERS = (
    "list_widgets",
    "create_widget",
    "get_widget",
    "delete_widget",
    "get_service_status",
)

# A hand-written module that implements two of the five operations.
HAND_WRITTEN = '''\
"""Widgets, kept in memory."""

from __future__ import annotations

from calls_api.context import AccountContext
from calls_api.problems import NotFound
from calls_api.results import NoContent, Ok
from generated import models

# widget_id -> widget; a real service would use ctx.store.
_WIDGETS: dict[str, models.Widget] = {}


async def get_widget(ctx: AccountContext, widget_id: str) -> Ok[models.Widget]:
    """The widget, or 404."""
    # Look it up; a missing widget is a 404 problem.
    widget = _WIDGETS.get(widget_id)
    if widget is None:
        raise NotFound(f"No widget {widget_id}")
    return Ok(widget)


async def delete_widget(ctx: AccountContext, widget_id: str) -> NoContent:
    """Forget the widget; deleting twice is fine."""
    _WIDGETS.pop(widget_id, None)  # idempotent on purpose
    return NoContent()


# Keep this comment at the end of the hand-written part.
'''

# What a subprocess reports about handlers.widgets: stub markers and what each stub raises.
PROBE = """
import asyncio, inspect, json, sys
from pathlib import Path

import generated, generated.adapters
from calls_api.scaffold import OperationNotImplemented, is_stub
from handlers import widgets

root = Path.cwd().resolve()
for module in (generated, widgets):
    assert Path(module.__file__).resolve().is_relative_to(root), module.__file__

report = {}
for name in sys.argv[1:]:
    function = getattr(widgets, name)
    entry = {"stub": is_stub(function), "coroutine": inspect.iscoroutinefunction(function)}
    if entry["stub"]:
        params = list(inspect.signature(function).parameters.values())[1:]
        kwargs = {p.name: None for p in params if p.default is inspect.Parameter.empty}
        try:
            asyncio.run(function(None, **kwargs))
        except OperationNotImplemented as exc:
            entry["status"] = exc.status
            entry["detail"] = exc.detail
    report[name] = entry
print(json.dumps(report))
"""


def make_root(base: Path) -> Path:
    """A minimal project root: our templates and pyproject.toml, the fixture spec."""
    root = base / "project"
    (root / "spec").mkdir(parents=True)
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy2(FIXTURE_SPEC, root / "spec" / "openapi.yaml")
    (root / "handlers").mkdir()
    (root / "handlers" / "__init__.py").write_text('"""Handlers."""\n', encoding="utf-8")
    return root


def probe(root: Path) -> dict[str, dict[str, object]]:
    """Import the root's handlers.widgets (and generated.adapters) in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    env.pop("PYTHONSAFEPATH", None)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *ALL_HANDLERS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, dict[str, object]] = json.loads(completed.stdout)
    return report


def ruff_undefined_names(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--no-cache", "--select", "F", path],
        capture_output=True,
        text=True,
        check=False,
    )


def top_level_functions(source: str) -> dict[str, str]:
    """name -> exact source text (decorators included) of each top-level function."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    result = {}
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            result[node.name] = "".join(lines[start - 1 : node.end_lineno])
    return result


def is_subsequence(needles: list[str], haystack: list[str]) -> bool:
    remaining = iter(haystack)
    return all(any(line == candidate for candidate in remaining) for line in needles)


# --- (a) a missing module is created with a stub per operation ----------------------------


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    root = make_root(tmp_path_factory.mktemp("fresh"))
    assert not (root / "handlers" / "widgets.py").exists()
    return root, generate(root)


def test_missing_module_is_created_with_every_operation(
    fresh: tuple[Path, GenerationReport],
) -> None:
    root, report = fresh
    module = root / "handlers" / "widgets.py"
    assert [(c.path, c.added) for c in report.scaffolded] == [(module, ALL_HANDLERS)]
    assert sorted(p.name for p in (root / "handlers").iterdir()) == ["__init__.py", "widgets.py"]
    functions = top_level_functions(module.read_text(encoding="utf-8"))
    assert list(functions) == list(ALL_HANDLERS)
    for name, source in functions.items():
        assert source.startswith(f"@not_implemented\nasync def {name}(\n"), source


def test_stubs_import_cleanly_are_marked_and_answer_501(
    fresh: tuple[Path, GenerationReport],
) -> None:
    root, _ = fresh
    report = probe(root)
    operation_ids = {
        "list_widgets": "listWidgets",
        "create_widget": "createWidget",
        "get_widget": "getWidget",
        "delete_widget": "deleteWidget",
        "get_service_status": "getServiceStatus",
    }
    assert report == {
        name: {
            "stub": True,
            "coroutine": True,
            "status": 501,
            "detail": f"The operation {operation_ids[name]} is not implemented yet",
        }
        for name in ALL_HANDLERS
    }


def test_scaffolded_module_has_no_undefined_names(fresh: tuple[Path, GenerationReport]) -> None:
    root, _ = fresh
    result = ruff_undefined_names(root / "handlers" / "widgets.py")
    assert result.returncode == 0, result.stdout + result.stderr


# --- (b) an existing module keeps every line; only the missing stubs are added ------------


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationReport]:
    root = make_root(tmp_path_factory.mktemp("partial"))
    (root / "handlers" / "widgets.py").write_text(HAND_WRITTEN, encoding="utf-8")
    return root, generate(root)


def test_existing_module_gets_only_the_missing_stubs(
    partial: tuple[Path, GenerationReport],
) -> None:
    root, report = partial
    module = root / "handlers" / "widgets.py"
    assert [(c.path, c.added) for c in report.scaffolded] == [
        (module, ("list_widgets", "create_widget", "get_service_status"))
    ]
    new = module.read_text(encoding="utf-8")
    functions = top_level_functions(new)
    assert sorted(functions) == sorted(ALL_HANDLERS)
    # The hand-written functions come first, as written; the stubs are appended after them.
    assert list(functions)[:2] == ["get_widget", "delete_widget"]
    for name in ("list_widgets", "create_widget", "get_service_status"):
        assert functions[name].startswith("@not_implemented\n")


def test_existing_lines_are_kept_in_order(partial: tuple[Path, GenerationReport]) -> None:
    root, _ = partial
    new = (root / "handlers" / "widgets.py").read_text(encoding="utf-8")
    assert is_subsequence(HAND_WRITTEN.splitlines(), new.splitlines())
    # Everything after the last import is untouched and contiguous, and only stubs follow it.
    tail = HAND_WRITTEN[HAND_WRITTEN.index("# widget_id -> widget") :]
    assert tail in new
    appended = new[new.index(tail) + len(tail) :]
    assert set(top_level_functions(appended)) == {
        "list_widgets",
        "create_widget",
        "get_service_status",
    }


def test_hand_written_bodies_are_untouched(partial: tuple[Path, GenerationReport]) -> None:
    root, _ = partial
    before = top_level_functions(HAND_WRITTEN)
    after = top_level_functions((root / "handlers" / "widgets.py").read_text(encoding="utf-8"))
    for name in ("get_widget", "delete_widget"):
        assert after[name] == before[name]


def test_only_the_missing_imports_are_added_after_the_last_import(
    partial: tuple[Path, GenerationReport],
) -> None:
    root, _ = partial
    new_lines = (root / "handlers" / "widgets.py").read_text(encoding="utf-8").splitlines()
    old_lines = HAND_WRITTEN.splitlines()
    # The head, up to the last import, is unchanged; the new imports come right after it,
    # then the rest of the original module.
    head = old_lines[: old_lines.index("from generated import models") + 1]
    assert new_lines[: len(head)] == head
    rest = new_lines[len(head) :]
    added = list(itertools.takewhile(lambda line: line.startswith("from "), rest))
    assert sorted(added) == [
        "from calls_api.context import Context",
        "from calls_api.results import Created",
        "from calls_api.scaffold import OperationNotImplemented",
        "from calls_api.scaffold import not_implemented",
    ]
    tail = old_lines[len(head) :]
    assert rest[len(added) : len(added) + len(tail)] == tail


def test_partial_module_imports_and_mixes_stubs_with_handlers(
    partial: tuple[Path, GenerationReport],
) -> None:
    root, _ = partial
    report = probe(root)
    assert {name: entry["stub"] for name, entry in report.items()} == {
        "list_widgets": True,
        "create_widget": True,
        "get_widget": False,
        "delete_widget": False,
        "get_service_status": True,
    }
    assert all(entry["coroutine"] for entry in report.values())
    assert {name: entry.get("status") for name, entry in report.items() if entry["stub"]} == {
        "list_widgets": 501,
        "create_widget": 501,
        "get_service_status": 501,
    }


def test_partial_module_has_no_undefined_names(partial: tuple[Path, GenerationReport]) -> None:
    root, _ = partial
    result = ruff_undefined_names(root / "handlers" / "widgets.py")
    assert result.returncode == 0, result.stdout + result.stderr


# --- (c) a second run adds nothing --------------------------------------------------------


@pytest.mark.parametrize("which", ["fresh", "partial"])
def test_second_generate_adds_nothing(
    which: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, _ = request.getfixturevalue(which)
    root = tmp_path / "project"
    shutil.copytree(source, root)
    module = root / "handlers" / "widgets.py"
    before = module.read_bytes()

    report = generate(root)
    assert report.scaffolded == []
    assert report.changed == []
    assert module.read_bytes() == before

    capsys.readouterr()
    assert run(root) == 0
    assert capsys.readouterr().out == "generate: up to date\n"
    assert module.read_bytes() == before


# --- the stamp knows which handlers must exist --------------------------------------------


def test_removing_a_handler_defeats_the_stamp_and_it_is_scaffolded_again(
    partial: tuple[Path, GenerationReport], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, _ = partial
    root = tmp_path / "project"
    shutil.copytree(source, root)
    module = root / "handlers" / "widgets.py"
    text = module.read_text(encoding="utf-8")
    removed = top_level_functions(text)["delete_widget"]
    module.write_text(text.replace(removed, ""), encoding="utf-8")

    capsys.readouterr()
    assert run(root) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "generate: scaffolded delete_widget in handlers/widgets.py: implement them"
    )
    assert "the stubs answer 501" in out
    functions = top_level_functions(module.read_text(encoding="utf-8"))
    assert list(functions)[-1] == "delete_widget"
    assert functions["delete_widget"].startswith("@not_implemented\n")


# --- edge cases of the scaffolder itself, without datamodel-codegen -----------------------


def test_module_without_trailing_newline_or_imports(tmp_path: Path) -> None:
    api = build_api(load_spec(FIXTURE_SPEC))
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    original = '"""Only a docstring."""\n\nLIMIT = 10  # no newline at the end'
    (handlers / "widgets.py").write_text(original, encoding="utf-8")

    changes = scaffold_handlers(api, handlers, template_environment(REPO / "templates"))

    assert [c.added for c in changes] == [ALL_HANDLERS]
    new = (handlers / "widgets.py").read_text(encoding="utf-8")
    assert is_subsequence(original.splitlines(), new.splitlines())
    lines = new.splitlines()
    assert lines[0] == '"""Only a docstring."""'
    assert lines[1].startswith("from ")  # imports go right after the docstring
    compile(new, "widgets.py", "exec")
    result = ruff_undefined_names(handlers / "widgets.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert scaffold_handlers(api, handlers, template_environment(REPO / "templates")) == []
