"""Property: whatever a policy file holds, loading it ends in a policy or a PolicyError.

Never another exception, and never a hang (issue 10, item 4): arbitrary text,
arbitrary bytes (as YAML and as TOML files), arbitrary YAML documents, and
arbitrary mutations of the four example policies, both of their text and of
their structure. Each test runs a bounded number of examples (a few seconds
in all); ``RATEKEEPER_FUZZ=N`` multiplies them for a longer hunt.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratekeeper import PolicyError, load_policy
from ratekeeper.policy import Policy, policy_from_text, source
from ratekeeper.policy.schema import PLACEHOLDERS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {path.stem: path.read_text(encoding="utf-8") for path in ROOT.glob("examples/*.yaml")}

#: a valid policy using every field of the reference (docs/policy.md), so that a
#: mutation can reach every rule: validation stops at the first error it meets
EVERY_FIELD = """\
version: 1
name: every
description: every field
docs_url: https://example.com/limits
identity:
  api_key_headers: [X-API-Key]
  bearer: true
  trusted_proxies: [10.0.0.0/8]
  node_header: X-Node-ID
  user_header: X-User-ID
defaults: {algorithm: sliding_window}
anonymous_plan: anonymous
unknown_key: anonymous
limits:
  api: {by: api_key, algorithm: token_bucket, rate: 100/minute, burst: 20, shadow: false}
  auth: 10/minute
  nodes: {by: [api_key, node], rate: "5/second;100/hour"}
  files: {by: "path:name", algorithm: sliding_log, rate: 3/minute}
  tenants: {by: "header:X-Tenant", algorithm: fixed_window, rate: 50/day}
  slots: {by: user, concurrency: 2, lease_ttl: 5 minutes}
plans:
  anonymous: {limits: {api: 10/minute, slots: 1}}
  pro: {description: more, limits: {api: unlimited, slots: unlimited}}
keys:
  - {key: demo, id: demo, plan: pro, user: acme, limits: {api: 5/second}}
  - {key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, id: h}
categories:
  - {name: health, match: GET /health, exempt: true}
  - {name: login, match: POST /login, charge: [auth]}
  - {name: files, match: ["GET /files/{name}"], charge: {files: 2, api: 1}}
  - {name: nodes, match: "/nodes/**", charge: [nodes, tenants], require_key: true}
  - {name: api, match: ["/api/**", "GET|HEAD /graphql"], charge: [api, slots]}
lockouts:
  login:
    categories: [login]
    failure_status: [401, 403]
    by: ip
    threshold: 5
    window: 15 minutes
    block: 15 minutes
    escalation: 2
    max_block: 24 hours
    response: blocked
  admin: {match: POST /admin, threshold: 3, window: 60, block: 120}
penalty:
  rejections: 50
  window: 1 minute
  block: 5 minutes
  by: ip
  escalation: 1.5
  max_block: 1 hour
  response: rate_limited
headers: {style: both, report: minute, retry_after: true}
responses:
  style: problem
  rate_limited:
    status: 429
    content_type: application/json
    body: {error: {code: LIMITED, retry: "{retry_after}", text: "{method} {path}: {limit}"}}
  blocked: {body: {blocked: "{ip}", until: "{reset}"}}
  bad_request: {status: 400, body: ["{detail}", 1, null, true]}
"""
EXAMPLES["every-field"] = EVERY_FIELD
TREES = {name: yaml.safe_load(text) for name, text in EXAMPLES.items()}

_SCALE = int(os.environ.get("RATEKEEPER_FUZZ", "1"))


def examples(count: int) -> Any:
    """Hypothesis settings for ``count`` examples (times RATEKEEPER_FUZZ), no deadline."""
    return settings(
        max_examples=count * _SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
    )


def loads_or_refuses(text: str, *, toml: bool = False) -> Policy | PolicyError:
    """The one property: a policy, or a PolicyError; anything else fails the test."""
    try:
        return policy_from_text(text, toml=toml)
    except PolicyError as error:
        refused = error
    assert str(refused).startswith("<policy>")  # renders, saying where
    return refused


# text and bytes

#: characters that mean something to YAML or TOML, and some that cannot be in a file
SYNTAX = "[]{}:,-#&*!|>'\"\n\t =.%@`?<~\\"
CHARACTERS = st.one_of(
    st.sampled_from(SYNTAX),
    st.characters(codec="utf-8"),
    st.sampled_from(["\udcff", "\x00", "\x85", "\ufeff", "\u2028"]),
)


#: what once escaped the loader's errors or hung it, to be found inside other text
HOSTILE = st.sampled_from(
    [
        "[" * 3000,
        "{a: " * 3000,
        "9" * 5001,
        "1:2:3:4:5",
        "2001-13-45",
        "!!bool maybe",
        "!!timestamp 2001-02-30",
        "!!int x",
        "&a [1] ",
        "*a",
        "<<: ",
        '"{path:>99}"',
        "{docs}",
        ".nan",
        ".inf",
        "\ufffd",
        "--- ",
    ]
)


@contextlib.contextmanager
def pure_python_parser() -> Iterator[None]:
    """PyYAML's own parser instead of libyaml's, as without the C extension."""
    native = source._Events
    source._Events = source._PurePythonEvents
    try:
        yield
    finally:
        source._Events = native


@examples(100)
@given(st.lists(st.text(CHARACTERS, max_size=30) | HOSTILE, max_size=8).map("".join))
def test_any_text_loads_or_is_refused(text: str) -> None:
    loads_or_refuses(text)
    loads_or_refuses(text, toml=True)
    with pure_python_parser():
        loads_or_refuses(text)


@examples(60)
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".toml"]))
def test_any_bytes_in_a_file_load_or_are_refused(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, suffix: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"policy{suffix}"
    path.write_bytes(raw)
    try:
        load_policy(path)
    except PolicyError as error:
        refused: PolicyError | None = error
    else:
        refused = None
    assert refused is None or refused.file == str(path)


# YAML documents

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-2, max_value=1000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0.5, 1e-9, 1e300, float("inf"), float("-inf"), float("nan")]),
    st.floats(),
    st.text(CHARACTERS, max_size=20).filter(lambda text: "\udcff" not in text),
    st.sampled_from(["{path}", "{retry_after}", "x {ip} y", "{nope}", "{path:>9}", "{{}}"]),
    st.sampled_from(["60/minute", "1/s;10/minute", "unlimited", "15 minutes", "0", "1e999"]),
    st.sampled_from(["/api/**", "GET /x/{id}", "POST|GET /a/*.b", "/**/x", "bad path"]),
)
FIELDS = st.sampled_from(
    [
        "version", "name", "limits", "plans", "keys", "categories", "responses", "lockouts",
        "penalty", "identity", "headers", "defaults", "by", "rate", "match", "charge", "body",
        "status", "concurrency", "burst", "algorithm", "threshold", "window", "block",
        "max_block", "escalation", "api", "key", "id", "plan", "exempt", "rate_limited",
        "anonymous_plan", "unknown_key", "require_key", "shadow", "lease_ttl", "style",
    ]
)  # fmt: skip
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(FIELDS | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


@examples(150)
@given(DATA)
def test_any_yaml_document_loads_or_is_refused(data: Any) -> None:
    loads_or_refuses(yaml.safe_dump(data, allow_unicode=True))
    loads_or_refuses(yaml.safe_dump({"version": 1, "limits": data, "categories": data}))


# mutations of the four examples


@st.composite
def text_mutations(draw: st.DrawFn) -> str:
    """An example's text, with a few lines deleted, repeated, moved or rewritten."""
    lines = EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        operation = draw(st.sampled_from(["delete", "repeat", "move", "edit", "insert"]))
        if operation == "delete":
            del lines[index]
        elif operation == "repeat":
            lines.insert(index, lines[index])
        elif operation == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(index))
        else:
            line = lines[index] if operation == "edit" else ""
            at = draw(st.integers(0, len(line)))
            cut = draw(st.integers(0, 3))
            inserted = draw(st.text(CHARACTERS, max_size=6) | HOSTILE)
            lines[index] = line[:at] + inserted + line[at + cut :]
    return "".join(lines)


@examples(250)
@given(text_mutations())
def test_examples_with_edited_text_load_or_are_refused(text: str) -> None:
    loads_or_refuses(text)


def _nodes(node: Any) -> list[Any]:
    """Every mapping and list in ``node``, itself included."""
    found = [node] if isinstance(node, dict | list) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        found.extend(_nodes(child))
    return found


NUMBERS = st.sampled_from([0, 1, 2, 3, 59, 60, 599, 600, -1, 0.5, 1e300]) | st.sampled_from(
    [float("inf"), float("nan"), 10**30, 2**63]
)
DURATIONS = NUMBERS | st.sampled_from(["1 second", "1h", "0s", "9" * 400, "1 fortnight", "nan"])
RATES = st.sampled_from(["60/minute", "5/second;100/hour", "unlimited", "0/s", "1/0m", "9" * 30])


def similar(old: Any) -> st.SearchStrategy[Any]:
    """Values of the kind ``old`` is, plausible or not: what finds the rules between fields."""
    if isinstance(old, bool) or old is None:
        return st.sampled_from([True, False, None])
    if isinstance(old, int | float):
        return NUMBERS | st.integers(-2, 1000)
    if isinstance(old, str) and old[:1].isdigit():  # a rate, a duration, a network
        return DURATIONS | RATES | st.just(old + old)
    if isinstance(old, str):
        return st.sampled_from(["api", "free", "login", "x y", "{path}", "/api/*", old * 2])
    if isinstance(old, list):
        return st.lists(st.sampled_from(old), max_size=len(old) + 1) if old else DATA
    return DATA


@st.composite
def tree_mutations(draw: st.DrawFn) -> Any:
    """An example's structure, with a few entries replaced, removed or added."""
    tree = yaml.safe_load(yaml.safe_dump(TREES[draw(st.sampled_from(sorted(TREES)))]))
    for _ in range(draw(st.integers(1, 3))):
        parent = draw(st.sampled_from(_nodes(tree)))
        if isinstance(parent, dict):
            key = draw(st.sampled_from(sorted(parent)) | FIELDS) if parent else draw(FIELDS)
            old = parent.get(key)
        else:
            key = draw(st.integers(0, len(parent)))
            old = parent[key] if key < len(parent) else None
        operation = draw(st.sampled_from(["like", "like", "like", "any", "remove"]))
        value = draw(similar(old) if operation == "like" else DATA)
        if operation == "remove" and isinstance(parent, dict):
            parent.pop(key, None)
        elif operation == "remove" and key < len(parent):
            del parent[key]
        elif isinstance(parent, dict) or key < len(parent):
            parent[key] = value
        else:
            parent.append(value)
    return tree


@examples(150)
@given(tree_mutations())
def test_examples_with_changed_values_load_or_are_refused(tree: Any) -> None:
    loads_or_refuses(yaml.safe_dump(tree, allow_unicode=True, sort_keys=False))


@examples(100)
@given(
    template=st.recursive(
        st.sampled_from(sorted(PLACEHOLDERS)).map(lambda name: "{" + name + "}")
        | st.text(max_size=30)
        | st.integers(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=20,
    )
)
def test_any_body_template_loads_or_is_refused(template: Any) -> None:
    policy = {
        "version": 1,
        "limits": {"api": "1/minute"},
        "categories": [{"name": "api", "match": "/**", "charge": ["api"]}],
        "responses": {"rate_limited": {"body": template}},
    }
    loads_or_refuses(yaml.safe_dump(policy, allow_unicode=True))
