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


def tree_section(nodes: str) -> str:
    return with_section("  tree:\n" + nodes)


def test_a_tree_reads_patterns_deny_unlimited_names_and_replaces() -> None:
    policy = policy_from_text(
        tree_section(
            "    - {key: files, value: 'files/*', share: true, category: api}\n"
            "    - {key: ip, value: 50.0.0.5, deny: minute, shadow: true}\n"
            "    - {key: ldap, unlimited: true, metric: d.ldap}\n"
            "    - {key: user, value: bk, category: api, name: specific}\n"
            "    - {key: user, category: api, replaces: [specific]}\n"
        )
    )
    assert policy.envoy is not None
    assert policy.envoy.tree is not None
    tree = policy.envoy.tree
    ((key, pattern, files),) = tree.wildcards
    assert (key, files.shared, files.category) == ("files", "files/*", "api")
    assert pattern.fullmatch("files/a/b.pdf")
    assert not pattern.fullmatch("file/a")
    denied = tree.children["ip", "50.0.0.5"]
    assert (denied.deny, denied.shadow) == (60, True)
    assert tree.children["ldap", None].unlimited
    assert tree.children["user", "bk"].name == "specific"
    assert tree.children["user", None].replaces == frozenset({"specific"})


def test_trees_hold_one_tree_per_domain() -> None:
    policy = policy_from_text(
        with_section(
            "  trees:\n    a: [{key: k, category: api}]\n    b: [{key: k, unlimited: true}]\n"
        )
    )
    assert policy.envoy is not None
    assert set(policy.envoy.trees) == {"a", "b"}
    assert policy.envoy.trees["a"].children["k", None].category == "api"


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ("    - {key: a, category: api, unlimited: true}\n", "one of 'category', 'unlimited'"),
        ("    - {key: a, category: api, shadow: true}\n", "'shadow' goes with 'deny'"),
        ("    - {key: a, value: b, share: true, category: api}\n", "a value with '*'"),
        ("    - {key: a, name: x, replaces: [x], category: api}\n", "its own name 'x'"),
        ("    - {key: a, deny: fortnight}\n", "expected one of second"),
        ("    - {key: a, colour: red}\n", "unknown field 'colour'"),
    ],
)  # fmt: skip
def test_a_bad_tree_node_is_refused_naming_the_field(nodes: str, message: str) -> None:
    with pytest.raises(PolicyError, match="envoy") as caught:
        policy_from_text(tree_section(nodes))
    assert message in str(caught.value)


def test_trees_and_a_domain_together_are_refused() -> None:
    with pytest.raises(PolicyError, match="'trees' names its domains"):
        policy_from_text(with_section("  domain: a\n  trees: {a: [{key: k, category: api}]}\n"))
