"""The breaking-change rules (each in both directions) and the publish gate."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from calls_api.publish.__main__ import Refused, check, gate, publish
from calls_api.publish.compare import RULES, compare

ROOT = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1.0.0"},
    "security": [{"bearer": []}],
    "paths": {
        "/things": {
            "post": {
                "parameters": [
                    {
                        "name": "mode",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["a", "b"], "maxLength": 10},
                    }
                ],
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ThingIn"}}
                    }
                },
                "responses": {
                    "201": {
                        "description": "made",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                        },
                    },
                    "400": {"description": "bad"},
                },
                "callbacks": {
                    "thingDone": {
                        "{$request.body#/hook}": {
                            "post": {
                                "requestBody": {
                                    "content": {
                                        "application/json": {
                                            "schema": {"$ref": "#/components/schemas/Thing"}
                                        }
                                    }
                                },
                                "responses": {"200": {"description": "ok"}},
                            }
                        }
                    }
                },
            }
        },
        "/things/{id}": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "ThingIn": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "size": {"type": "integer", "minimum": 0, "maximum": 10},
                    "color": {"type": "string", "enum": ["red", "blue"]},
                },
            },
            "Thing": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "state": {"type": "string", "enum": ["new", "done"]},
                },
            },
        }
    },
}

Edit = Callable[[dict[str, Any]], object]


def edited(edit: Edit) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    edit(doc)
    return doc


def thing_in(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"]["ThingIn"]  # type: ignore[no-any-return]


def thing(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"]["Thing"]  # type: ignore[no-any-return]


def param(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["paths"]["/things"]["post"]["parameters"][0]  # type: ignore[no-any-return]


# rule -> an edit of BASE that makes it happen. Reversed, most rules turn into their
# counterpart (removed <-> added), which is checked too.
CASES: dict[str, Edit] = {
    "path-removed": lambda d: d["paths"].pop("/things/{id}"),
    "operation-removed": lambda d: (
        d["paths"]["/things/{id}"].pop("get")
        and d["paths"]["/things/{id}"].update({"put": {"responses": {"200": {"description": "x"}}}})
    ),
    "operation-deprecated": lambda d: d["paths"]["/things/{id}"]["get"].update(deprecated=True),
    "success-status-changed": lambda d: d["paths"]["/things"]["post"].update(
        responses={"200": d["paths"]["/things"]["post"]["responses"]["201"]}
    ),
    "security-removed": lambda d: d.update(security=[{"other": []}]),
    "error-response-added": lambda d: d["paths"]["/things"]["post"]["responses"].update(
        {"429": {"description": "slow down"}}
    ),
    "error-response-removed": lambda d: d["paths"]["/things"]["post"]["responses"].pop("400"),
    "callback-removed": lambda d: d["paths"]["/things"]["post"].pop("callbacks"),
    "callback-added": lambda d: d["paths"]["/things/{id}"]["get"].update(
        callbacks=copy.deepcopy(d["paths"]["/things"]["post"]["callbacks"])
    ),
    "parameter-required-added": lambda d: d["paths"]["/things"]["post"]["parameters"].append(
        {"name": "v", "in": "query", "required": True, "schema": {"type": "string"}}
    ),
    "parameter-optional-added": lambda d: d["paths"]["/things"]["post"]["parameters"].append(
        {"name": "v", "in": "query", "schema": {"type": "string"}}
    ),
    "parameter-removed": lambda d: d["paths"]["/things"]["post"].update(parameters=[]),
    "parameter-location-changed": lambda d: param(d).update({"in": "header"}),
    "parameter-became-required": lambda d: param(d).update(required=True),
    "request-field-required-added": lambda d: (
        thing_in(d)["properties"].update(extra={"type": "string"}),
        thing_in(d)["required"].append("extra"),
    ),
    "request-field-became-required": lambda d: thing_in(d)["required"].append("size"),
    "request-field-optional-added": lambda d: thing_in(d)["properties"].update(
        extra={"type": "string"}
    ),
    "request-field-removed": lambda d: thing_in(d)["properties"].pop("color"),
    "request-enum-value-removed": lambda d: thing_in(d)["properties"]["color"].update(enum=["red"]),
    "request-enum-value-added": lambda d: thing_in(d)["properties"]["color"].update(
        enum=["red", "blue", "green"]
    ),
    "response-field-removed": lambda d: thing(d)["properties"].pop("state"),
    "response-field-added": lambda d: thing(d)["properties"].update(extra={"type": "string"}),
    "response-enum-value-removed": lambda d: thing(d)["properties"]["state"].update(enum=["new"]),
    "response-enum-value-added": lambda d: thing(d)["properties"]["state"].update(
        enum=["new", "done", "lost"]
    ),
    "type-changed": lambda d: thing_in(d)["properties"]["size"].update(type="string"),
    "narrowed": lambda d: thing_in(d)["properties"]["name"].update(maxLength=50),
    "widened": lambda d: thing_in(d)["properties"]["name"].update(maxLength=500),
}
COUNTERPARTS = {
    "path-removed": "path-added",
    "error-response-added": "error-response-removed",
    "error-response-removed": "error-response-added",
    "callback-removed": "callback-added",
    "callback-added": "callback-removed",
    "parameter-required-added": "parameter-removed",
    "parameter-optional-added": "parameter-removed",
    "request-field-optional-added": "request-field-removed",
    "request-field-removed": "request-field-optional-added",
    "request-enum-value-removed": "request-enum-value-added",
    "request-enum-value-added": "request-enum-value-removed",
    "response-field-removed": "response-field-added",
    "response-field-added": "response-field-removed",
    "response-enum-value-removed": "response-enum-value-added",
    "response-enum-value-added": "response-enum-value-removed",
    "narrowed": "widened",
    "widened": "narrowed",
}


def test_every_rule_has_a_case() -> None:
    # The rest are found as the counterparts of reversed cases.
    assert set(CASES) | {"path-added", "operation-added"} == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_is_found_with_its_verdict(rule: str) -> None:
    changes = compare(BASE, edited(CASES[rule]))
    assert rule in {change.rule for change in changes}, changes
    found = next(change for change in changes if change.rule == rule)
    assert found.breaking is RULES[rule][0]
    assert found.pointer.startswith("/")


@pytest.mark.parametrize("rule", sorted(COUNTERPARTS))
def test_the_reverse_change_is_its_counterpart(rule: str) -> None:
    changes = compare(edited(CASES[rule]), BASE)
    assert COUNTERPARTS[rule] in {change.rule for change in changes}, changes


def hook_body(doc: dict[str, Any]) -> dict[str, Any]:
    hook = doc["paths"]["/things"]["post"]["callbacks"]["thingDone"]["{$request.body#/hook}"]
    return hook["post"]["requestBody"]["content"]["application/json"]  # type: ignore[no-any-return]


def test_a_webhook_body_is_compared_like_a_response() -> None:
    before = copy.deepcopy(BASE)
    before["components"]["schemas"]["Event"] = {
        "type": "object",
        "properties": {"state": {"type": "string"}},
    }
    hook_body(before)["schema"] = {"$ref": "#/components/schemas/Event"}
    after = copy.deepcopy(before)
    after["components"]["schemas"]["Event"]["properties"].pop("state")

    changes = compare(before, after)

    assert [(c.rule, c.breaking) for c in changes] == [("response-field-removed", True)]
    assert "/callbacks/thingDone/{$request.body#~1hook}/post/requestBody" in changes[0].pointer
    assert [c.rule for c in compare(after, before)] == ["response-field-added"]


def test_an_unchanged_document_has_no_changes() -> None:
    assert compare(BASE, copy.deepcopy(BASE)) == []


def test_the_gate_wants_a_major_version_for_a_break_and_a_version_for_any_change() -> None:
    broken = edited(CASES["response-field-removed"])
    with pytest.raises(Refused, match="new major version"):
        gate(BASE, broken, publishing=True)
    broken["info"]["version"] = "2.0.0"
    assert gate(BASE, broken, publishing=True)
    added = edited(CASES["response-field-added"])
    with pytest.raises(Refused, match=r"raise info\.version"):
        gate(BASE, added, publishing=True)
    assert gate(BASE, added, publishing=False), "make check lets additions wait for publish"
    added["info"]["version"] = "1.1.0"
    assert gate(BASE, added, publishing=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "spec").mkdir()
    shutil.copy(ROOT / "spec" / "openapi.yaml", tmp_path / "spec" / "openapi.yaml")
    for folder in ("templates", "generated"):  # the client is rendered from them
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def test_publish_twice_is_byte_identical_and_records_what_was_published(project: Path) -> None:
    written = publish(project)
    first = {name: (project / name).read_bytes() for name in written}
    publish(project)
    assert {name: (project / name).read_bytes() for name in written} == first
    published = json.loads((project / "spec/published/openapi.json").read_text())
    assert published == json.loads((project / "dist/openapi.json").read_text())
    assert yaml.safe_load((project / "dist/openapi.yaml").read_text()) == published
    version = published["info"]["version"]
    sums: dict[str, str] = {}
    for line in (project / "dist/SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert {
        "CHANGELOG.md",
        "openapi.json",
        "openapi.yaml",
        "client/pyproject.toml",
        "client/calls_api_client/client.py",
        f"calls_api_client-{version}-py3-none-any.whl",
        "docs/index.html",
    } <= set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((project / "dist" / name).read_bytes()).hexdigest() == digest


def test_removing_a_response_field_is_refused_until_the_major_version_rises(
    project: Path,
) -> None:
    publish(project, docs=False)
    spec_file = project / "spec" / "openapi.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    first = f"## {spec['info']['version']}"
    del spec["components"]["schemas"]["Call"]["properties"]["failure_reason"]
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(Refused, match="failure_reason: a response field was removed"):
        check(project)
    with pytest.raises(Refused):
        publish(project, docs=False)
    spec["info"]["version"] = "1.0.0"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    publish(project, docs=False)
    changelog = (project / "dist/CHANGELOG.md").read_text()
    assert changelog.index("## 1.0.0") < changelog.index(first)
    assert "BREAKING" in changelog.split(first)[0]


def test_the_repository_spec_passes_its_own_gate() -> None:
    check(ROOT)
