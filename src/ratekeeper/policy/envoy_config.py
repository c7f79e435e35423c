"""The reference service's config (envoyproxy/ratelimit YAML) compiled into a ratekeeper policy.

``ratekeeper serve --envoy-config FILE`` reads a config of the reference
service as it is::

    domain: mongo_cps
    descriptors:
      - key: database
        value: users
        rate_limit: {unit: second, requests_per_unit: 500}
      - key: database
        value: default
        rate_limit: {unit: second, requests_per_unit: 500}

and serves it with an equivalent policy: every descriptor node with a
``rate_limit`` becomes a category charging its own limit (a clock-aligned
fixed window, as the reference counts), counted by the values of every entry
from the root to that node (a key without a value counts each value apart);
``unlimited`` and nodes without a rate limit are not limited; ``shadow_mode``
is the limit's ``shadow``. The policy's ``envoy:`` section is a ``tree``
(:mod:`ratekeeper.policy.envoy`) walked as the reference walks its
descriptors. Beside the reference's single ``rate_limit``, a node may hold a
``rate_limits`` list: several limits on one descriptor, all charged in one step.

Not read (refused, with the reason): ``replaces``. Accepted and not used:
``detailed_metric``, a rate limit's ``name``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import PolicyError
from .model import Policy

__all__ = ["EnvoyConfigError", "envoy_config_policy", "load_envoy_config"]

_UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class EnvoyConfigError(PolicyError):
    """The file is not a config of the reference service ratekeeper can serve."""


def load_envoy_config(path: str | Path) -> Policy:
    """The policy serving the reference config in ``path``."""
    from . import policy_from_dict

    text = Path(path).read_text(encoding="utf-8")
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise EnvoyConfigError(f"{path}: not YAML: {error}") from None
    try:
        data = envoy_config_policy(config)
    except EnvoyConfigError as error:
        raise EnvoyConfigError(f"{path}: {error.message}") from None
    return policy_from_dict(data, name=Path(path).stem)


def envoy_config_policy(config: Any) -> dict[str, Any]:
    """The policy (as plain data) equivalent to the reference config ``config``."""
    if not isinstance(config, dict) or not isinstance(config.get("domain"), str):
        raise EnvoyConfigError("a ratelimit config is a mapping with a 'domain'")
    unknown = set(config) - {"domain", "descriptors"}
    if unknown:
        raise EnvoyConfigError(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
    limits: dict[str, Any] = {}
    categories: list[dict[str, Any]] = []
    entries: dict[str, str] = {}
    tree = _nodes(config.get("descriptors") or [], (), limits, categories, entries)
    if not categories:  # a policy needs one; this one matches no HTTP request
        limits["envoy_none"] = {"by": "ip", "rate": "1/second"}
        categories.append({"name": "envoy_none", "match": "/.envoy-config", "charge": []})
    return {
        "version": 1,
        "name": re.sub(r"[^A-Za-z0-9_.-]", "_", config["domain"])[:64] or "envoy-config",
        "description": "compiled from an envoyproxy/ratelimit config (--envoy-config)",
        "defaults": {"algorithm": "fixed_window"},
        "anonymous_plan": "anonymous",  # descriptors name no API key: nobody is refused for it
        "plans": {"anonymous": {}},
        "limits": limits,
        "categories": categories,
        "envoy": {"domain": config["domain"], "entries": entries, "tree": tree},
    }


def _nodes(
    items: Any,
    path: tuple[str, ...],
    limits: dict[str, Any],
    categories: list[dict[str, Any]],
    entries: dict[str, str],
) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise EnvoyConfigError(f"'descriptors' under {_where(path)} must be a list")
    out: list[dict[str, Any]] = []
    allowed = {
        "key", "value", "rate_limit", "rate_limits", "descriptors", "shadow_mode",
        "detailed_metric", "replaces",
    }  # fmt: skip
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise EnvoyConfigError(f"a descriptor under {_where(path)} needs a 'key'")
        unknown = set(item) - allowed
        if unknown:
            raise EnvoyConfigError(f"unknown field(s) {sorted(unknown)} under {_where(path)}")
        key = item["key"]
        value = None if item.get("value") in (None, "") else str(item["value"])
        here = (*path, key if value is None else f"{key}={value}")
        if "replaces" in item:
            raise EnvoyConfigError(f"{_where(here)}: 'replaces' is not supported yet")
        if not _TOKEN.match(key):
            raise EnvoyConfigError(f"{_where(here)}: key {key!r} has characters ratekeeper refuses")
        entries[key] = f"header:{key.lower()}"
        node: dict[str, Any] = {"key": key}
        if value is not None:
            node["value"] = value
        rates = _rates(item, here)
        if rates:
            name = f"envoy_{len(categories) + 1}"
            keys = [part.partition("=")[0].lower() for part in here]
            by = [f"header:{k}" for k in dict.fromkeys(keys)]
            for index, rate in enumerate(rates):
                limits[f"{name}_{index + 1}" if len(rates) > 1 else name] = {
                    "by": by,
                    "rate": rate,
                    "shadow": bool(item.get("shadow_mode", False)),
                }
            charged = [n for n in limits if n == name or n.startswith(f"{name}_")]
            categories.append({"name": name, "match": f"/.envoy-config/{name}", "charge": charged})
            node["category"] = name
        if item.get("descriptors"):
            node["descriptors"] = _nodes(item["descriptors"], here, limits, categories, entries)
        out.append(node)
    return out


def _rates(item: dict[str, Any], here: tuple[str, ...]) -> list[str]:
    """The node's rates as ratekeeper writes them; ``[]``: not limited (none, or unlimited)."""
    if "rate_limit" in item and "rate_limits" in item:
        raise EnvoyConfigError(f"{_where(here)}: give 'rate_limit' or 'rate_limits', not both")
    specs = item.get("rate_limits") or ([item["rate_limit"]] if item.get("rate_limit") else [])
    if not isinstance(specs, list):
        raise EnvoyConfigError(f"{_where(here)}: 'rate_limits' must be a list")
    rates: list[str] = []
    for spec in specs:
        if not isinstance(spec, dict):
            raise EnvoyConfigError(f"{_where(here)}: a rate limit is a mapping")
        unknown = set(spec) - {"unit", "requests_per_unit", "unlimited", "name"}
        if unknown:
            raise EnvoyConfigError(f"{_where(here)}: unknown rate limit field(s) {sorted(unknown)}")
        if spec.get("unlimited"):
            return []
        unit = str(spec.get("unit", "")).lower()
        count = spec.get("requests_per_unit")
        if unit not in _UNITS:
            raise EnvoyConfigError(f"{_where(here)}: unit {unit!r} is not one of {_UNITS}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise EnvoyConfigError(f"{_where(here)}: requests_per_unit must be a whole number")
        if count == 0:
            raise EnvoyConfigError(
                f"{_where(here)}: requests_per_unit 0 (refuse everything) is not supported yet"
            )
        rates.append(f"{count}/{unit}")
    return rates


def _where(path: tuple[str, ...]) -> str:
    return "the top level" if not path else " > ".join(path)
