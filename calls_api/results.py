"""What handlers return: typed results that the generated adapters turn into responses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """200 with a body."""

    body: T
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Created(Generic[T]):
    """201 with the new resource and where it lives."""

    body: T
    location: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accepted(Generic[T]):
    """202: the request was taken and will complete later."""

    body: T
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoContent:
    """204, no body."""

    headers: Mapping[str, str] = field(default_factory=dict)


Result = Ok[T] | Created[T] | Accepted[T] | NoContent
