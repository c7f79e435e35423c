"""The policy's identity section: which header the proxies write, and how it is validated.

Kept apart from test_policy_schema.py: these fields are the client's identity,
and each error must name the field so an operator goes straight to the line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import get_args

import pytest

from ratekeeper import PolicyError, load_policy
from ratekeeper.identity import FORWARDED_HEADERS
from ratekeeper.policy import policy_from_text
from ratekeeper.policy.compiler import compile_policy
from ratekeeper.policy.model import ForwardedHeader
from ratekeeper.policy.summary import describe_policy

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


# networks

PLANNED = """\
version: 1
identity:
  networks:
{networks}
anonymous_plan: anonymous
limits:
  api: {{by: api_key, rate: 10/minute}}
plans:
  anonymous: {{limits: {{api: 10/minute}}}}
  internal: {{limits: {{api: 50/minute}}}}
categories:
  - {{name: api, match: /api/**, charge: [api]}}
"""


def networks_error(networks: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from_text(PLANNED.format(networks=textwrap.indent(networks, "    ")))
    return caught.value


def test_networks_are_read_in_file_order() -> None:
    networks = (
        "- {cidr: [10.0.0.0/8, 'fd00::/8'], exempt: true}\n- {cidr: 192.0.2.0/24, plan: internal}"
    )
    policy = policy_from_text(PLANNED.format(networks=textwrap.indent(networks, "    ")))

    assert [(n.cidrs, n.exempt, n.plan) for n in policy.identity.networks] == [
        (("10.0.0.0/8", "fd00::/8"), True, None),
        (("192.0.2.0/24",), False, "internal"),
    ]


@pytest.mark.parametrize(
    ("networks", "field", "message"),
    [
        ("- {cidr: 10.0.0.0/33, exempt: true}", "identity.networks[0].cidr", "not an IP network"),
        ("- {cidr: [10.0.0.0/8, nope], exempt: true}", "identity.networks[0].cidr", "'nope'"),
        ("- {cidr: 10.0.0.0/8, plan: gold}", "identity.networks[0].plan", "no plan named 'gold'"),
        ("- {cidr: 10.0.0.0/8}", "identity.networks[0]", "either 'exempt: true' or a 'plan'"),
        ("- {cidr: 10.0.0.0/8, exempt: false}", "identity.networks[0]", "either"),
        (
            "- {cidr: 10.0.0.0/8, exempt: true, plan: internal}",
            "identity.networks[0]",
            "either",
        ),
        ("- {exempt: true}", "identity.networks[0]", "missing required field 'cidr'"),
        ("- {cidr: 10.0.0.0/8, exempt: yes please}", "identity.networks[0].exempt", "true or"),
        ("- {cidr: 10.0.0.0/8, exempt: true, name: x}", "identity.networks[0].name", "unknown"),
    ],
)
def test_a_malformed_network_is_a_load_error_naming_the_field(
    networks: str, field: str, message: str
) -> None:
    error = networks_error(networks)

    assert error.field == field
    assert message in error.message
    assert error.line == 4


def test_policy_check_says_who_the_client_is() -> None:
    networks = (
        "- {cidr: [10.0.0.0/8, 'fd00::/8'], exempt: true}\n- {cidr: 192.0.2.0/24, plan: internal}"
    )
    text = PLANNED.format(networks=textwrap.indent(networks, "    ")).replace(
        "identity:\n",
        "identity:\n  trusted_proxies: [127.0.0.1/32]\n  forwarded_header: forwarded\n",
    )

    lines = describe_policy(policy_from_text(text))

    assert (
        "  client IP: forwarded from 127.0.0.1/32, else the peer; counted by IPv4 /32, IPv6 /64"
        in lines
    )
    assert "  network 10.0.0.0/8, fd00::/8: exempt" in lines
    assert "  network 192.0.2.0/24: plan internal (callers without a key)" in lines
    assert "  client IP: the peer; counted by IPv4 /32, IPv6 /64" in describe_policy(
        policy_from_text(
            with_identity("bearer: true").replace("  trusted_proxies: [10.0.0.0/8]\n", "")
        )
    )


def test_the_policy_and_the_resolver_know_the_same_forwarding_headers() -> None:
    assert get_args(ForwardedHeader) == FORWARDED_HEADERS
