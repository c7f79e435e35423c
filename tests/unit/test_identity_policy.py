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


# ipv4_prefix, ipv6_prefix


def test_clients_are_counted_by_ipv6_64_and_whole_ipv4_addresses_by_default() -> None:
    identity = policy_from_text(with_identity("bearer: true")).identity

    assert (identity.ipv4_prefix, identity.ipv6_prefix) == (32, 64)


def test_the_prefixes_are_read_from_the_identity_section() -> None:
    policy = policy_from_text(with_identity("ipv4_prefix: 24\n  ipv6_prefix: 56"))
    addresses = compile_policy(policy).client_addresses

    assert (policy.identity.ipv4_prefix, policy.identity.ipv6_prefix) == (24, 56)
    assert addresses.counted("192.0.2.77") == "192.0.2.0/24"
    assert addresses.counted("2001:db8:1:2ff::1") == "2001:db8:1:200::/56"


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("ipv4_prefix: 0", "must be at least 1"),
        ("ipv4_prefix: 33", "between 1 and 32"),
        ("ipv6_prefix: 0", "must be at least 1"),
        ("ipv6_prefix: 129", "between 1 and 128"),
        ("ipv6_prefix: /64", "expected a whole number"),
        ("ipv4_prefix: 24.5", "expected a whole number"),
    ],
)
def test_a_prefix_out_of_range_is_a_load_error_naming_the_field(field: str, message: str) -> None:
    error = error_of(field)

    assert (error.field, error.line) == ("identity." + field.split(":")[0], 4)
    assert message in error.message
