"""Load the hand-written spec and validate it, naming the file, line and problem on failure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import OpenAPIV30SpecValidator


class SpecError(Exception):
    """The spec cannot be used; the message says where and why."""

    def __init__(self, message: str, *, pointer: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.pointer = tuple(pointer)  # where in the document, when the message lacks it


def load_spec(path: Path) -> dict[str, Any]:
    """Parse and validate an OpenAPI 3.0 document, or raise SpecError with a location."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec: {exc}") from exc
    try:
        # libyaml's loader when it is there (the same document, several times faster);
        # a document it refuses is parsed again by PyYAML's own, whose messages we show.
        document = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        document = _parse_or_fail(path, text)
    if not isinstance(document, dict):
        raise SpecError(f"{path}:1:1: the spec must be a mapping (an OpenAPI document)")
    version = str(document.get("openapi", ""))
    errors: list[Any] = []
    if version.startswith("3.0."):
        errors = sorted(
            OpenAPIV30SpecValidator(document).iter_errors(),
            key=lambda error: [str(part) for part in error.absolute_path],
        )
        if not errors:
            return document
    # Something is wrong: the YAML tree says where.
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not version.startswith("3.0."):
        raise SpecError(
            f"{path}:{_line_of(root, ['openapi'])}: openapi must be 3.0.x "
            f"(connexion 3 serves only 3.0), found {version or 'nothing'!r}"
        )
    if errors:
        lines = []
        for error in errors[:20]:
            pointer = list(error.absolute_path)
            location = "/".join(str(part) for part in pointer) or "(document)"
            lines.append(f"{path}:{_line_of(root, pointer)}: at {location}: {error.message}")
        raise SpecError("the spec is not a valid OpenAPI 3.0 document:\n" + "\n".join(lines))
    return document


_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_or_fail(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecError(f"{where}: invalid YAML: {exc.problem}") from exc


def locate(path: Path, error: SpecError) -> SpecError:
    """The error with the spec file and the `line:column` its pointer reaches in front."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return SpecError(f"{path}:{_line_of(root, error.pointer)}: {error}")


def _line_of(root: yaml.Node | None, pointer: Iterable[Any]) -> str:
    """The `line:column` of the deepest node the pointer reaches in the YAML tree."""
    node = root
    for part in pointer:
        child = _child(node, part)
        if child is None:
            break
        node = child
    if node is None:
        return "1:1"
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if str(key.value) == str(part):
                return value  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]  # type: ignore[no-any-return]
    return None
