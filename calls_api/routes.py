"""The spec's paths as patterns, to answer questions about a URL before or without routing."""

from __future__ import annotations

import re
from functools import cache

from generated.adapters import ROUTES


@cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple(
        (re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))), method)
        for method, template in ROUTES.values()
    )


def methods_for(path: str) -> set[str]:
    """The methods the spec declares on this concrete path (empty when it names none)."""
    return {method for pattern, method in _patterns() if pattern.fullmatch(path)}
