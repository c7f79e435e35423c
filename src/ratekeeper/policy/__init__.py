"""Policy files: a provider's rate limits, validated once and compiled for speed.

>>> policy = load_policy("examples/scanner.yaml")   # doctest: +SKIP
>>> sorted(policy.plans)                              # doctest: +SKIP
['anonymous', 'enterprise', 'free', 'pro']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .compiler import CompiledPolicy, compile_key, compile_policy
from .errors import PolicyError
from .model import Category, KeyEntry, LimitDef, Lockout, Penalty, Plan, Policy
from .schema import build_policy, hash_api_key, key_limits
from .source import check_plain_data, parse_document, read_document

__all__ = [
    "Category",
    "CompiledPolicy",
    "KeyEntry",
    "LimitDef",
    "Lockout",
    "Penalty",
    "Plan",
    "Policy",
    "PolicyError",
    "compile_key",
    "compile_policy",
    "hash_api_key",
    "key_limits",
    "load_policy",
    "policy_from_dict",
    "policy_from_text",
]


def load_policy(path: str | Path) -> Policy:
    """Read, validate and test-compile the policy file at ``path`` (YAML or ``.toml``)."""
    data, file = read_document(path)
    return _checked(data, file, Path(path).stem)


def policy_from_text(text: str, *, toml: bool = False, name: str = "policy") -> Policy:
    """A policy from YAML (or TOML) text, for tests and embedded policies."""
    return _checked(parse_document(text, "<policy>", toml=toml), "<policy>", name)


def policy_from_dict(data: dict[str, Any], *, name: str = "policy") -> Policy:
    """A policy from plain data already in memory (nested at most 64 levels deep)."""
    check_plain_data(data, None)
    return _checked(data, None, name)


def _checked(data: Any, file: str | None, default_name: str) -> Policy:
    safe_name = (
        "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in default_name) or "policy"
    )
    policy = build_policy(data, file, default_name=safe_name[:64])
    compile_policy(policy)
    return policy
