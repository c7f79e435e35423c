"""The policy's ``envoy:`` section: validated with the file's other sections, clear errors."""

from __future__ import annotations

import pytest

from ratekeeper.policy import PolicyError, policy_from_text
from ratekeeper.policy.envoy import EnvoyMapping, EnvoyRule

BASE = """\
version: 1
limits: {api: {by: api_key, rate: 10/minute}}
keys: [{key: k1, id: one}]
categories: [{name: api, match: /api/**, charge: [api]}]
"""


def with_section(section: str) -> str:
    return BASE + "envoy:\n" + section


def test_a_section_reads_domain_entries_rules_and_route() -> None:
    policy = policy_from_text(
        with_section(
            "  domain: edge\n"
            "  entries: {remote_address: client_ip, key: api_key, t: 'header:X-Tenant'}\n"
            "  descriptors: [{match: {generic_key: api, key: '*'}, category: api}]\n"
            "  route: {path: ':path'}\n"
        )
    )
    assert policy.envoy == EnvoyMapping(
        "edge",
        {"remote_address": "client_ip", "key": "api_key", "t": "header:X-Tenant"},
        (EnvoyRule((("generic_key", "api"), ("key", None)), "api"),),
        (":method", ":path"),
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  descriptors: [{match: {generic_key: x}, category: nope}]\n",
         "no category named 'nope'"),
        ("  entries: {a: ip}\n  route: {path: p}\n", "an entry cannot mean 'ip'"),
        ("  entries: {a: 'header:'}\n  route: {path: p}\n", "'header' needs a name"),
        ("  entries: {a: 'node:x'}\n  route: {path: p}\n", "'node' takes no name"),
        ("  entries: {a: 'header:bad name'}\n  route: {path: p}\n", "is not a header name"),
        ("  descriptors: [{match: {}, category: api}]\n", "name at least one entry"),
        ("  domain: edge\n", "say which category a descriptor is charged to"),
        ("  domian: edge\n", "unknown field 'domian' (did you mean 'domain'?)"),
    ],
)  # fmt: skip
def test_a_bad_section_is_refused_naming_the_field(section: str, message: str) -> None:
    with pytest.raises(PolicyError, match="envoy") as caught:
        policy_from_text(with_section(section))
    assert message in str(caught.value)


def test_a_policy_without_a_section_has_none() -> None:
    assert policy_from_text(BASE).envoy is None
