"""The spec as the model generator should see it.

Some schema keywords only constrain which combinations of fields are valid: `oneOf` /
`anyOf` whose branches list nothing but `required`, `not` over such a branch, and
`not: {}` (a field that is refused whatever its value). connexion enforces them from the
spec itself; to datamodel-code-generator they would turn one request model into a union of
near-identical models. The model view drops them, and only them; shapes stay as written.
"""

from __future__ import annotations

from typing import Any

_COMBINATORS = ("oneOf", "anyOf")


def model_view(node: Any) -> Any:
    """A copy of the document without validation-only keywords."""
    if isinstance(node, list):
        return [model_view(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key in _COMBINATORS and _all_constraints(value):
            continue
        if key == "allOf" and _all_constraints(value):
            continue
        if key == "not" and (value == {} or _is_constraint(value)):
            continue
        result[key] = model_view(value)
    return result


def _is_constraint(schema: Any) -> bool:
    """A schema that only says which fields must (not) appear together."""
    if not isinstance(schema, dict) or not schema:
        return False
    if set(schema) == {"required"}:
        return True
    if set(schema) == {"not"}:
        return _is_constraint(schema["not"])
    return False


def _all_constraints(branches: Any) -> bool:
    return isinstance(branches, list) and bool(branches) and all(map(_is_constraint, branches))
