"""The simulated carrier: deterministic outcomes by destination. It places no real calls.

| destination ends with (number) / SIP user | what happens                                    |
|-------------------------------------------|-------------------------------------------------|
| `0486` / `busy`                           | rings, then `busy` (486 Busy Here)              |
| `0487` / `noanswer`                       | rings until `timeout`, then `no-answer` (487)   |
| `0503` / `fail`                           | `failed` after trying (503 Service Unavailable) |
| `0183` / `early`                          | early media instead of ringing, then answers    |
| anything else                             | rings, then answers (if before `timeout`)       |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["answer", "busy", "no-answer", "fail", "early-media"]

_RULES: tuple[tuple[str, str, Outcome], ...] = (
    ("0486", "busy", "busy"),
    ("0487", "noanswer", "no-answer"),
    ("0503", "fail", "fail"),
    ("0183", "early", "early-media"),
)


@dataclass(frozen=True)
class Script:
    """What the simulated far end does for one destination."""

    outcome: Outcome


def script_for(destination: str) -> Script:
    """The outcome for a destination: an E.164 number or a sip:/sips: URI."""
    match = re.match(r"^sips?:([^@;]+)", destination, re.IGNORECASE)
    user = match.group(1).lower() if match else ""
    for suffix, sip_user, outcome in _RULES:
        if destination.endswith(suffix) or user == sip_user or user.endswith(suffix):
            return Script(outcome)
    return Script("answer")
