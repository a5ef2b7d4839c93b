"""What scaffolded handler stubs use: a marker the tests look for, and a 501 problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from calls_api.problems import Problem

F = TypeVar("F", bound=Callable[..., object])

STUB_MARKER = "__scaffolded_stub__"


def not_implemented(function: F) -> F:
    """Mark a scaffolded stub; remove the decorator when the handler is implemented."""
    setattr(function, STUB_MARKER, True)
    return function


def is_stub(function: object) -> bool:
    """True for a handler that is still the scaffolded stub."""
    return bool(getattr(function, STUB_MARKER, False))


class OperationNotImplemented(Problem):
    """Raised by a scaffolded stub: the operation is in the spec but not implemented yet."""

    status = 501
    title = "Not Implemented"

    def __init__(self, operation_id: str) -> None:
        super().__init__(f"The operation {operation_id} is not implemented yet")
