"""The reference service's config (envoyproxy/ratelimit YAML) compiled into a ratekeeper policy.

``ratekeeper serve --envoy-config PATH`` reads configs of the reference
service as they are (``PATH``: one file, or a directory of ``*.yaml`` /
``*.yml`` files, one domain each, as the reference loads its runtime
directory)::

    domain: mongo_cps
    descriptors:
      - key: database
        value: users
        rate_limit: {unit: second, requests_per_unit: 500}
      - key: database
        value: default
        rate_limit: {unit: second, requests_per_unit: 500}

and serves them with an equivalent policy: every descriptor node with a
``rate_limit`` becomes a category charging its own limit (a clock-aligned
fixed window, as the reference counts), counted by the values of every entry
from the root to that node (a key without a value, or with a ``*`` pattern,
counts each value apart; ``share_threshold`` counts a pattern's matches as
one); ``unlimited``, ``requests_per_unit: 0`` (refuse every hit),
``shadow_mode``, ``name`` and ``replaces`` mean what the reference says. The
policy's ``envoy:`` section holds one ``tree`` per domain
(:mod:`ratekeeper.policy.envoy`), walked as the reference walks its
descriptors. Beside the reference's single ``rate_limit``, a node may hold a
``rate_limits`` list: several limits on one descriptor, all charged in one step.

Accepted and not used: ``detailed_metric`` and ``value_to_metric`` (metrics
name a rule by the values written in the config only, so their label count
stays bounded), ``metadata`` (Envoy's dynamic metadata is not sent).
Refused with the reason: ``quota_mode`` (not in the reference's documentation).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..algorithms import check_rate, get_algorithm
from ..rates import parse_rates
from .errors import PolicyError
from .model import Policy

__all__ = ["EnvoyConfigError", "envoy_config_policy", "load_envoy_config"]

_UNITS = ("second", "minute", "hour", "day", "week", "month", "year")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_FIELDS = {
    "key", "value", "rate_limit", "rate_limits", "descriptors", "shadow_mode", "detailed_metric",
    "value_to_metric", "share_threshold", "metadata",
}  # fmt: skip
_RATE_FIELDS = {"unit", "requests_per_unit", "unlimited", "name", "replaces"}


class EnvoyConfigError(PolicyError):
    """The file is not a config of the reference service ratekeeper can serve."""


def load_envoy_config(path: str | Path) -> Policy:
    """The policy serving the reference config in ``path`` (a file or a directory of them)."""
    from . import policy_from_dict

    path = Path(path)
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if path.is_dir()
        else [path]
    )
    if not files:
        raise EnvoyConfigError(f"{path}: no *.yaml or *.yml config in this directory")
    configs: list[Any] = []
    for file in files:
        try:
            configs.append(yaml.safe_load(file.read_text(encoding="utf-8")))
        except yaml.YAMLError as error:
            raise EnvoyConfigError(f"{file}: not YAML: {error}") from None
    try:
        data = envoy_config_policy(*configs)
    except EnvoyConfigError as error:
        where = files[error.index] if isinstance(error, _FileError) else path
        raise EnvoyConfigError(f"{where}: {error.message}") from None
    return policy_from_dict(data, name=path.stem)


class _FileError(EnvoyConfigError):
    """An error in the ``index``-th config."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def envoy_config_policy(*configs: Any) -> dict[str, Any]:
    """The policy (as plain data) equivalent to the reference configs ``configs``."""
    limits: dict[str, Any] = {}
    categories: list[dict[str, Any]] = []
    entries: dict[str, str] = {}
    trees: dict[str, list[dict[str, Any]]] = {}
    for index, config in enumerate(configs):
        try:
            domain = _domain(config)
            if domain in trees:
                raise EnvoyConfigError(f"a second config for domain {domain!r}")
            compiler = _Compiler(limits, categories, entries)
            trees[domain] = compiler.nodes(config.get("descriptors") or [], (), domain)
        except EnvoyConfigError as error:
            raise _FileError(error.message, index) from None
    if not categories:  # a policy needs one; this one matches no HTTP request
        limits["envoy_none"] = {"by": "ip", "rate": "1/second"}
        categories.append({"name": "envoy_none", "match": "/.envoy-config", "charge": []})
    first = next(iter(trees), "")
    return {
        "version": 1,
        "name": re.sub(r"[^A-Za-z0-9_.-]", "_", first)[:64] or "envoy-config",
        "description": "compiled from an envoyproxy/ratelimit config (--envoy-config)",
        "defaults": {"algorithm": "fixed_window"},
        "anonymous_plan": "anonymous",  # descriptors name no API key: nobody is refused for it
        "plans": {"anonymous": {}},
        "limits": limits,
        "categories": categories,
        "envoy": {"entries": entries, "trees": trees},
    }


def _domain(config: Any) -> str:
    if not isinstance(config, dict) or not isinstance(config.get("domain"), str):
        raise EnvoyConfigError("a ratelimit config is a mapping with a 'domain'")
    if not config["domain"]:
        raise EnvoyConfigError("the domain cannot be empty")
    unknown = set(config) - {"domain", "descriptors"}
    if unknown:
        raise EnvoyConfigError(f"unknown top-level field(s): {', '.join(sorted(unknown))}")
    return str(config["domain"])


class _Compiler:
    """Turns one config's descriptor nodes into tree nodes, limits and categories."""

    def __init__(
        self, limits: dict[str, Any], categories: list[dict[str, Any]], entries: dict[str, str]
    ) -> None:
        self.limits, self.categories, self.entries = limits, categories, entries

    def nodes(self, items: Any, path: tuple[str, ...], metric: str) -> list[dict[str, Any]]:
        if not isinstance(items, list):
            raise EnvoyConfigError(f"'descriptors' under {_where(path)} must be a list")
        return [self.node(item, path, metric) for item in items]

    def node(self, item: Any, path: tuple[str, ...], metric: str) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise EnvoyConfigError(f"a descriptor under {_where(path)} needs a 'key'")
        unknown = set(item) - _FIELDS
        if unknown:
            hint = " (not in the reference's documentation)" if "quota_mode" in unknown else ""
            raise EnvoyConfigError(f"unknown field(s) {sorted(unknown)} under {_where(path)}{hint}")
        key = item["key"]
        value = _text(item.get("value"), "value", path)
        for flag in ("shadow_mode", "detailed_metric", "value_to_metric", "share_threshold"):
            _flag(item, flag, path)
        final = key if value is None else f"{key}_{value}"
        here = (*path, key if value is None else f"{key}={value}")
        if not _TOKEN.match(key):
            raise EnvoyConfigError(f"{_where(here)}: key {key!r} has characters ratekeeper refuses")
        meaning = f"header:{key.lower()}"
        other = next((k for k, m in self.entries.items() if m == meaning and k != key), None)
        if other is not None:  # the limits count by header-like names, which ignore case
            raise EnvoyConfigError(
                f"{_where(here)}: keys {other!r} and {key!r} differ only in case, "
                "which ratekeeper cannot count apart"
            )
        self.entries[key] = meaning
        node: dict[str, Any] = {"key": key, "metric": f"{metric}.{final}"}
        if value is not None:
            node["value"] = value
        if item.get("share_threshold"):
            if value is None or "*" not in value:
                raise EnvoyConfigError(
                    f"{_where(here)}: share_threshold goes with a value holding '*'"
                )
            node["share"] = True
        shadow = bool(item.get("shadow_mode", False))
        rates, named = _rates(item, here)
        node.update(named)
        if rates == "unlimited":
            node["unlimited"] = True
        elif rates and rates[0].startswith("0/"):
            node["deny"] = rates[0][2:]
            if shadow:
                node["shadow"] = True
        elif rates:
            name = f"envoy_{len(self.categories) + 1}"
            keys = [part.partition("=")[0].lower() for part in here]
            by = [f"header:{k}" for k in dict.fromkeys(keys)]
            charged = []
            for index, rate in enumerate(rates):
                limit = f"{name}_{index + 1}" if len(rates) > 1 else name
                self.limits[limit] = {"by": by, "rate": rate, "shadow": shadow}
                charged.append(limit)
            self.categories.append(
                {"name": name, "match": f"/.envoy-config/{name}", "charge": charged}
            )
            node["category"] = name
        if item.get("descriptors"):
            node["descriptors"] = self.nodes(item["descriptors"], here, node["metric"])
        return node


def _rates(item: dict[str, Any], here: tuple[str, ...]) -> tuple[list[str] | str, dict[str, Any]]:
    """The node's rates as ratekeeper writes them (``"0/unit"``: refuse all; ``"unlimited"``),
    and its ``name``/``replaces`` for the tree."""
    if "rate_limit" in item and "rate_limits" in item:
        raise EnvoyConfigError(f"{_where(here)}: give 'rate_limit' or 'rate_limits', not both")
    single = item.get("rate_limit") is not None  # `rate_limit:` left empty: none, as there
    specs = item.get("rate_limits") or ([item["rate_limit"]] if single else [])
    if not isinstance(specs, list):
        raise EnvoyConfigError(f"{_where(here)}: 'rate_limits' must be a list")
    rates: list[str] = []
    named: dict[str, Any] = {}
    for spec in specs:
        if not isinstance(spec, dict):
            raise EnvoyConfigError(f"{_where(here)}: a rate limit is a mapping")
        unknown = set(spec) - _RATE_FIELDS
        if unknown:
            raise EnvoyConfigError(f"{_where(here)}: unknown rate limit field(s) {sorted(unknown)}")
        if ("name" in spec or "replaces" in spec) and not single:
            raise EnvoyConfigError(
                f"{_where(here)}: 'name' and 'replaces' go in a single 'rate_limit'"
            )
        named.update(_names(spec, here))
        unit = (_text(spec.get("unit"), "unit", here) or "").lower()
        if _flag(spec, "unlimited", here):
            if unit:
                raise EnvoyConfigError(f"{_where(here)}: an unlimited rate limit has no unit")
            if not single:
                raise EnvoyConfigError(f"{_where(here)}: 'unlimited' goes in a single 'rate_limit'")
            return "unlimited", named
        count = spec.get("requests_per_unit")
        if unit not in _UNITS:
            raise EnvoyConfigError(f"{_where(here)}: unit {unit!r} is not one of {_UNITS}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise EnvoyConfigError(f"{_where(here)}: requests_per_unit must be a whole number")
        if count == 0 and not single:
            raise EnvoyConfigError(
                f"{_where(here)}: requests_per_unit 0 (refuse all) goes in a single 'rate_limit'"
            )
        rates.append(_counted(f"{count}/{unit}", here))
    return rates, named


def _counted(rate: str, here: tuple[str, ...]) -> str:
    """``rate``, if a clock-aligned fixed window counts it exactly (else refused here, naming
    the descriptor, rather than by the compiled policy, naming a limit the file never had)."""
    if rate.startswith("0/"):
        return rate
    try:
        (parsed,) = parse_rates(rate)
        check_rate(get_algorithm("fixed_window"), parsed.limit, parsed.window_ns, parsed.limit)
    except ValueError as error:
        raise EnvoyConfigError(f"{_where(here)}: {error}") from None
    return rate


def _names(spec: dict[str, Any], here: tuple[str, ...]) -> dict[str, Any]:
    """The tree's ``name``/``replaces`` of a rate limit (the reference's ``replaces: [{name}]``)."""
    out: dict[str, Any] = {}
    name = _text(spec.get("name"), "name", here)
    if name is not None:
        out["name"] = name
    replaces = spec.get("replaces") or []
    if not isinstance(replaces, list):
        raise EnvoyConfigError(f"{_where(here)}: 'replaces' is a list of {{name: ...}}")
    names = []
    for entry in replaces:
        replaced = _text(entry.get("name"), "name", here) if isinstance(entry, dict) else None
        if replaced is None:
            raise EnvoyConfigError(f"{_where(here)}: a 'replaces' entry needs a 'name'")
        if replaced == out.get("name"):
            raise EnvoyConfigError(f"{_where(here)}: a rate limit cannot replace its own name")
        names.append(replaced)
    if names:
        out["replaces"] = names
    return out


def _text(value: Any, field: str, here: tuple[str, ...]) -> str | None:
    """A scalar as the reference reads it, as text: ``None`` for none or empty; YAML's
    ``true`` is ``"true"`` (Envoy sends the text); a list or a mapping is refused."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise EnvoyConfigError(f"{_where(here)}: '{field}' must be text, got {type(value).__name__}")


def _flag(item: dict[str, Any], field: str, here: tuple[str, ...]) -> bool:
    """A true/false field; anything else (``'false'`` the text, ``1``) is refused."""
    value = item.get(field, False)
    if not isinstance(value, bool):
        raise EnvoyConfigError(f"{_where(here)}: '{field}' must be true or false, got {value!r}")
    return value


def _where(path: tuple[str, ...]) -> str:
    return "the top level" if not path else " > ".join(path)
