"""The policy's identity section: which header the proxies write, and how it is validated.

Kept apart from test_policy_schema.py: these fields are the client's identity,
and each error must name the field so an operator goes straight to the line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ratekeeper import PolicyError, load_policy
from ratekeeper.policy import policy_from_text
from ratekeeper.policy.compiler import compile_policy

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))

BASE = """\
version: 1
identity:
  trusted_proxies: [10.0.0.0/8]
  {field}
limits:
  api: {{by: ip, rate: 10/minute}}
categories:
  - {{name: api, match: /api/**, charge: [api]}}
"""


def with_identity(field: str) -> str:
    return textwrap.dedent(BASE.format(field=field))


def error_of(field: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from_text(with_identity(field))
    return caught.value


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_the_examples_read_x_forwarded_for_from_their_loopback_proxies(path: Path) -> None:
    policy = load_policy(path)

    assert policy.identity.forwarded_header == "x-forwarded-for"
    assert compile_policy(policy).ip_resolver.header == "x-forwarded-for"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("X-Forwarded-For", "x-forwarded-for"),
        ("forwarded", "forwarded"),
        ("Forwarded", "forwarded"),
        ("X-Real-IP", "x-real-ip"),
    ],
)
def test_the_forwarded_header_is_named_in_any_case(written: str, read: str) -> None:
    policy = policy_from_text(with_identity(f"forwarded_header: {written}"))

    assert policy.identity.forwarded_header == read


@pytest.mark.parametrize("value", ["X-Client-IP", "true", "[forwarded]"])
def test_an_unknown_forwarded_header_is_a_load_error_naming_the_field(value: str) -> None:
    error = error_of(f"forwarded_header: {value}")

    assert (error.field, error.line) == ("identity.forwarded_header", 4)
    assert "x-forwarded-for, forwarded, x-real-ip" in error.message
