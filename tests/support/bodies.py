"""Checks of the JSON bodies a policy renders."""

from __future__ import annotations

import json

from ratekeeper import PolicyDecision

__all__ = ["assert_json_body"]


def assert_json_body(decision: PolicyDecision, expected: bytes) -> None:
    """The body is ``expected`` byte for byte (and as JSON, for a readable diff)."""
    assert decision.body is not None
    assert json.loads(decision.body) == json.loads(expected)
    assert decision.body == expected
    assert decision.content_type == "application/json"
