"""make publish end to end on a small fixture API, published twice (1.0.0, then 1.1.0):
the bundle, the changelog and the typed client are compared with committed golden files.

Run `UPDATE_GOLDEN=1 pytest tests/test_publish_golden.py` to refresh
tests/publish_fixture/golden/ after an intended change, and review the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from calls_api.codegen.pipeline import build
from calls_api.publish.__main__ import publish

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "publish_fixture"
GOLDEN = FIXTURE / "golden"
# What the goldens pin: every text file make publish writes, except the docs page (1.4 MB of
# Redoc; tests/test_docs.py covers it) and the wheel (a zip of the client files pinned here).
PINNED = (
    "openapi.yaml",
    "openapi.json",
    "CHANGELOG.md",
    "SHA256SUMS",
    "client/pyproject.toml",
    "client/README.md",
    "client/calls_api_client/__init__.py",
    "client/calls_api_client/client.py",
    "client/calls_api_client/models.py",
)


def publish_version(root: Path, spec: Path) -> list[str]:
    """What `make generate` then `make publish` do, for one version of the fixture."""
    shutil.copy(spec, root / "spec" / "openapi.yaml")
    generated = root / "generated"
    shutil.rmtree(generated, ignore_errors=True)
    generated.mkdir()
    build(root, generated)  # the client embeds the generated models
    return publish(root, docs=False)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publish") / "project"
    (root / "spec").mkdir(parents=True)
    shutil.copytree(REPO / "templates", root / "templates")
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    first = publish_version(root, FIXTURE / "old.yaml")
    assert "dist/calls_api_client-1.0.0-py3-none-any.whl" in first
    second = publish_version(root, FIXTURE / "new.yaml")
    assert "dist/calls_api_client-1.1.0-py3-none-any.whl" in second
    return root


@pytest.mark.parametrize("name", PINNED)
def test_published_file_matches_its_golden(published: Path, name: str) -> None:
    actual = (published / "dist" / name).read_text(encoding="utf-8")
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"{golden} is missing: run with UPDATE_GOLDEN=1 to create it"
    assert actual == golden.read_text(encoding="utf-8"), (
        f"dist/{name} differs from {golden.relative_to(REPO)}; "
        "if the change is intended, rerun with UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_folder_has_no_stale_files() -> None:
    goldens = sorted(p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*.txt"))
    assert goldens == sorted(f"{name}.txt" for name in PINNED)


# What the goldens must say, checked on the output itself, so a careless refresh cannot
# enshrine a wrong answer.


def test_the_changelog_lists_both_versions_and_each_change(published: Path) -> None:
    changelog = (published / "dist" / "CHANGELOG.md").read_text()
    newer, _, older = changelog.partition("## 1.0.0")
    assert "## 1.1.0" in newer
    assert "First published version." in older
    for expected in (
        "/paths/~1notes~1{note_id}/delete: an operation was added",
        "/paths/~1notes/post/requestBody/properties/color: a new optional request field",
        "/paths/~1notes/post/responses/201/properties/color: a response field was added",
        "/paths/~1notes/get/parameters/state/enum: a request enum value was added (archived)",
    ):
        assert f"- {expected}" in newer, expected
    assert "BREAKING" not in changelog


def test_the_bundle_is_the_new_spec_without_implementation_extensions(published: Path) -> None:
    bundle = (published / "dist" / "openapi.yaml").read_text()
    assert "version: 1.1.0" in bundle
    assert "operationId: deleteNote" in bundle
    assert "x-" not in bundle


def test_the_client_has_a_method_per_operation_of_the_new_version(published: Path) -> None:
    client = (published / "dist" / "client" / "calls_api_client" / "client.py").read_text()
    for method in ("list_notes", "create_note", "get_note", "delete_note"):
        assert f"def {method}(" in client, method
    models = (published / "dist" / "client" / "calls_api_client" / "models.py").read_text()
    assert "class NoteCreate(" in models
    assert "color:" in models
