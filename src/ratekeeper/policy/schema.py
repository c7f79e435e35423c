"""Validation: a policy document (plain data) into a :class:`Policy`.

Every rule a policy must follow is checked here, once, at load time, and every
failure names the file, line and field. The reference for the format is
docs/policy.md; keep the two in step.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import string
from typing import Any

from ..algorithms import ALGORITHMS, DEFAULT_ALGORITHM, check_cost, check_rate
from ..identity import FORWARDED_HEADERS
from ..rates import Rate
from .compiler import compile_policy
from .envoy import envoy_mapping
from .errors import PolicyError
from .fields import Field
from .model import (
    BY_KINDS,
    Category,
    ForwardedHeader,
    HeaderSettings,
    Identity,
    KeyEntry,
    LimitDef,
    Lockout,
    Network,
    Penalty,
    Plan,
    PlanValue,
    Policy,
    ResponseTemplate,
    Route,
)
from .patterns import PatternError, parse_pattern

__all__ = ["PLACEHOLDERS", "build_policy", "hash_api_key"]

PLACEHOLDERS = frozenset(
    {
        "retry_after", "limit", "remaining", "reset", "window", "ip", "plan", "category",
        "docs_url", "method", "path", "key_id", "detail", "status",
    }
)  # fmt: skip

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_METHOD_RE = re.compile(r"^[A-Z]+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FIELD_VALUE_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]*$")
_RESPONSE_KINDS = ("rate_limited", "unauthorized", "blocked", "bad_request", "unavailable")


def hash_api_key(raw: str) -> str:
    """The SHA-256 hex digest under which an API key is known."""
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def build_policy(data: Any, file: str | None = None, *, default_name: str = "policy") -> Policy:
    """Validate a policy document and return the :class:`Policy` it describes."""
    root = Field(data, "", getattr(data, "line", None), file)
    top = root.mapping(
        {
            "version", "name", "description", "identity", "defaults", "anonymous_plan",
            "unknown_key", "headers", "responses", "docs_url", "limits", "plans", "keys",
            "categories", "lockouts", "penalty", "envoy",
        },
        required=("version", "limits", "categories"),
    )  # fmt: skip
    if top["version"].integer() != 1:
        raise top["version"].error("only version 1 is understood")
    name = _name(top["name"]) if "name" in top else default_name
    defaults = top["defaults"].mapping({"algorithm"}) if "defaults" in top else {}
    algorithm = _algorithm(defaults["algorithm"]) if "algorithm" in defaults else DEFAULT_ALGORITHM
    docs_url = top["docs_url"].string() if "docs_url" in top else ""

    limits = _limits(top["limits"], algorithm)
    plans = _plans(top["plans"], limits) if "plans" in top else {}
    if not plans:
        plans = {"default": Plan("default", {})}
    anonymous_plan = None
    if "anonymous_plan" in top:
        anonymous_plan = top["anonymous_plan"].string()
        if anonymous_plan not in plans:
            raise top["anonymous_plan"].error(f"no plan named {anonymous_plan!r}")
    _require_rates_everywhere(plans, limits, top.get("plans") or root)
    keys = _keys(top["keys"], plans, limits) if "keys" in top else ()
    patterns = _PatternText()
    categories = _categories(top["categories"], limits, patterns)
    responses = _responses(top.get("responses"), docs_url)
    lockouts = (
        _lockouts(top["lockouts"], categories, responses, patterns) if "lockouts" in top else ()
    )
    penalty = _penalty(top["penalty"], responses) if "penalty" in top else None
    envoy = (
        envoy_mapping(top["envoy"], frozenset(category.name for category in categories))
        if "envoy" in top
        else None
    )
    return Policy(
        name=name,
        file=file,
        description=top["description"].string() if "description" in top else "",
        identity=_identity(top["identity"], plans) if "identity" in top else Identity(),
        algorithm=algorithm,
        anonymous_plan=anonymous_plan,
        unknown_key=_choice(top, "unknown_key", ("reject", "anonymous"), "reject"),  # type: ignore[arg-type]
        headers=_headers(top["headers"]) if "headers" in top else HeaderSettings(),
        responses=responses,
        docs_url=docs_url,
        limits=limits,
        plans=plans,
        keys=keys,
        categories=categories,
        lockouts=lockouts,
        penalty=penalty,
        envoy=envoy,
    )


def _choice(fields: dict[str, Field], key: str, choices: tuple[str, ...], default: str) -> str:
    return fields[key].string(choices=choices) if key in fields else default


def _name(field: Field) -> str:
    value = field.string()
    if not _NAME_RE.match(value):
        raise field.error(
            f"{value!r} is not a usable name: letters, digits, '_', '-', '.' (at most 64)"
        )
    return value


def _algorithm(field: Field) -> str:
    return field.string(choices=tuple(sorted(ALGORITHMS)))


def _by(field: Field) -> tuple[str, ...]:
    parts = field.strings()
    for part in parts:
        kind, _, argument = part.partition(":")
        if kind not in BY_KINDS:
            raise field.error(f"cannot count by {part!r}: use {', '.join(BY_KINDS)}")
        if kind in ("header", "path"):
            if not argument:
                raise field.error(f"{kind!r} needs a name, as in '{kind}:X-Tenant-ID'")
            if kind == "header" and not _HEADER_RE.match(argument):
                raise field.error(f"{argument!r} is not a header name")
        elif argument:
            raise field.error(f"{kind!r} takes no argument")
    if len(set(parts)) != len(parts):
        raise field.error("the same part is named twice")
    return parts


# limits and plans


def _limits(field: Field, algorithm: str) -> dict[str, LimitDef]:
    limits: dict[str, LimitDef] = {}
    for name, entry in field.mapping().items():
        _name(Field(name, entry.path, entry.line, entry.file))
        if isinstance(entry.value, str):  # shorthand: `auth: 100/minute`
            shorthand = _bounded(entry, entry.rates(), algorithm, None)
            limits[name] = LimitDef(name, ("api_key",), algorithm, shorthand)
            continue
        spec = entry.mapping(
            {"by", "algorithm", "rate", "concurrency", "burst", "shadow", "lease_ttl"}
        )
        by = _by(spec["by"]) if "by" in spec else ("api_key",)
        shadow = spec["shadow"].boolean() if "shadow" in spec else False
        if "concurrency" in spec:
            if "rate" in spec or "algorithm" in spec or "burst" in spec:
                raise entry.error("a concurrency limit takes no rate, algorithm or burst")
            cap = _cap(spec["concurrency"])
            ttl = spec["lease_ttl"].duration() if "lease_ttl" in spec else 60.0
            limits[name] = LimitDef(
                name, by, algorithm, concurrency=cap, is_concurrency=True, shadow=shadow,
                lease_ttl=ttl,
            )  # fmt: skip
            continue
        if "lease_ttl" in spec:
            raise spec["lease_ttl"].error("lease_ttl is for concurrency limits")
        chosen = _algorithm(spec["algorithm"]) if "algorithm" in spec else algorithm
        burst = spec["burst"].integer(minimum=1) if "burst" in spec else None
        if burst is not None and chosen != "token_bucket":
            raise spec["burst"].error("burst applies to the token_bucket algorithm only")
        if burst is not None and burst > ALGORITHMS[chosen].max_limit:
            raise spec["burst"].error(
                f"burst {burst:,} is above {ALGORITHMS[chosen].max_limit:,}, the most "
                f"{chosen} counts exactly (docs/algorithms.md, 'Bounds')"
            )
        rates = None
        if "rate" in spec:
            rates = _bounded(spec["rate"], spec["rate"].rates(), chosen, burst)
        limits[name] = LimitDef(name, by, chosen, rates, burst=burst, shadow=shadow)
    if not limits:
        raise field.error("a policy needs at least one limit")
    return limits


def _bounded(
    field: Field, rates: tuple[Rate, ...], algorithm: str, burst: int | None
) -> tuple[Rate, ...]:
    """``rates``, each within what ``algorithm`` counts exactly on every store.

    Past a bound (algorithms/bounds.py) the Redis scripts would round or
    overflow, so the policy is refused here, naming the field, rather than
    counting wrongly in production.
    """
    chosen = ALGORITHMS[algorithm]
    for rate in rates:
        try:
            check_rate(chosen, rate.limit, rate.window_ns, rate.limit if burst is None else burst)
        except ValueError as error:
            raise field.error(str(error)) from None
    return rates


def _cap(field: Field) -> int | None:
    if field.value == "unlimited":
        return None
    return field.integer(minimum=1)


def _plan_value(field: Field, limit: LimitDef) -> PlanValue:
    if limit.is_concurrency:
        return _cap(field)
    return _bounded(field, field.rates(), limit.algorithm, limit.burst)


def _plan_limits(field: Field, limits: dict[str, LimitDef]) -> dict[str, PlanValue]:
    values: dict[str, PlanValue] = {}
    for name, entry in field.mapping().items():
        limit = limits.get(name)
        if limit is None:
            raise entry.error(f"no limit named {name!r}; declare it under 'limits'")
        values[name] = _plan_value(entry, limit)
    return values


def key_limits(policy: Policy, data: Any, where: str = "limits") -> dict[str, PlanValue]:
    """A key's own limits from plain data (``{"api": "100/minute", "slots": 5}``), checked
    against ``policy`` as a policy key's are: for the registry's per-key overrides.

    Only limits whose value depends on the caller may be set (``overridable``):
    a limit no plan sets is compiled as one value for everyone.
    """
    values = _plan_limits(Field(data, where, None, None), policy.limits)
    fixed = sorted(set(values) - compile_policy(policy).overridable)
    if fixed:
        raise PolicyError(
            f"limit {fixed[0]!r} has one value for every caller (no plan sets it): a key "
            "can set only limits that a plan sets, caps and limits without a default rate",
            field=f"{where}.{fixed[0]}",
        )
    return values


def _plans(field: Field, limits: dict[str, LimitDef]) -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    for name, entry in field.mapping().items():
        _name(Field(name, entry.path, entry.line, entry.file))
        spec = entry.mapping({"limits", "description"})
        values = _plan_limits(spec["limits"], limits) if "limits" in spec else {}
        plans[name] = Plan(name, values)
    return plans


def _require_rates_everywhere(
    plans: dict[str, Plan], limits: dict[str, LimitDef], where: Field
) -> None:
    for limit in limits.values():
        if limit.rates is not None or limit.is_concurrency:
            continue
        for plan in plans.values():
            if limit.name not in plan.limits:
                raise where.error(
                    f"plan {plan.name!r} gives no rate for limit {limit.name!r}, which has no "
                    "default 'rate'; give one (or 'unlimited')"
                )


def _keys(
    field: Field, plans: dict[str, Plan], limits: dict[str, LimitDef]
) -> tuple[KeyEntry, ...]:
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for item in field.items():
        spec = item.mapping({"key", "key_sha256", "id", "plan", "name", "user", "limits"})
        if ("key" in spec) == ("key_sha256" in spec):
            raise item.error("give exactly one of 'key' (demo keys) or 'key_sha256'")
        if "key" in spec:
            digest = hash_api_key(spec["key"].string())
        else:
            digest = spec["key_sha256"].string().lower()
            if not _SHA256_RE.match(digest):
                raise spec["key_sha256"].error("expected 64 hexadecimal digits")
        if digest in seen:
            raise item.error("this key is listed twice")
        seen.add(digest)
        plan = spec["plan"].string() if "plan" in spec else next(iter(plans))
        if plan not in plans:
            raise spec["plan"].error(f"no plan named {plan!r}")
        key_id = _name(spec["id"]) if "id" in spec else f"k-{digest[:12]}"
        entries.append(
            KeyEntry(
                id=key_id,
                sha256=digest,
                plan=plan,
                name=spec["name"].string() if "name" in spec else "",
                user=spec["user"].string() if "user" in spec else None,
                limits=_plan_limits(spec["limits"], limits) if "limits" in spec else {},
            )
        )
    ids = [entry.id for entry in entries]
    if len(set(ids)) != len(ids):
        raise field.error("two keys share one id")
    return tuple(entries)


# categories and routes


#: path patterns per policy, and their text in all (exact paths, one lookup each, are
#: free): each pattern is a regular expression compiled at load (about 45 us, and
#: 1-4 us per character) and tried in order on every path not seen before
MAX_PATTERNS = 2048
MAX_PATTERN_TEXT = 64 * 1024


class _PatternText:
    """How many patterns, and how much pattern text, a policy has used so far."""

    __slots__ = ("count", "used")

    def __init__(self) -> None:
        self.count = 0
        self.used = 0


def _routes(field: Field, patterns: _PatternText) -> tuple[Route, ...]:
    routes: list[Route] = []
    for item in field.items():
        text = item.string()
        method_text, _, path = text.rpartition(" ")
        method_text = method_text.strip()
        methods: frozenset[str] | None = None
        if method_text and method_text != "*":
            names = [name.strip().upper() for name in method_text.split("|")]
            for name in names:
                if not _METHOD_RE.match(name):
                    raise item.error(f"{name!r} is not an HTTP method")
            methods = frozenset(names)
        try:
            parsed = parse_pattern(path)
        except PatternError as error:
            raise item.error(str(error)) from None
        if parsed.exact is None:
            patterns.count += 1
            patterns.used += len(path)
            if patterns.count > MAX_PATTERNS or patterns.used > MAX_PATTERN_TEXT:
                raise item.error(
                    f"a policy has at most {MAX_PATTERNS} path patterns, "
                    f"{MAX_PATTERN_TEXT // 1024} KiB of text in all (exact paths are not "
                    "counted: list those where you can)"
                )
        routes.append(Route(methods, path))
    return tuple(routes)


def _charges(field: Field, limits: dict[str, LimitDef]) -> tuple[tuple[str, int], ...]:
    pairs: list[tuple[str, int]] = []
    if isinstance(field.value, dict):
        for name, cost in field.mapping().items():
            units = cost.integer(minimum=0)
            limit = limits.get(name)
            if limit is not None and not limit.is_concurrency:
                try:
                    check_cost(ALGORITHMS[limit.algorithm], units)
                except ValueError as error:
                    raise cost.error(str(error)) from None
            pairs.append((name, units))
    else:
        pairs.extend((item.string(), 1) for item in field.items())
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise field.error("a limit is charged twice")
    for name, _ in pairs:
        if name not in limits:
            raise field.error(f"no limit named {name!r}; declare it under 'limits'")
    return tuple(pairs)


def _categories(
    field: Field, limits: dict[str, LimitDef], patterns: _PatternText
) -> tuple[Category, ...]:
    categories: list[Category] = []
    for item in field.items():
        spec = item.mapping({"name", "match", "exempt", "charge", "require_key"}, ("name", "match"))
        name = _name(spec["name"])
        exempt = spec["exempt"].boolean() if "exempt" in spec else False
        if exempt and "charge" in spec:
            raise item.error("an exempt category is charged nothing; remove 'charge'")
        charges = _charges(spec["charge"], limits) if "charge" in spec else ()
        routes = _routes(spec["match"], patterns)
        _require_path_params(item, routes, charges, limits)
        categories.append(
            Category(
                name=name,
                routes=routes,
                exempt=exempt,
                charges=charges,
                require_key=spec["require_key"].boolean() if "require_key" in spec else None,
            )
        )
    names = [category.name for category in categories]
    if len(set(names)) != len(names):
        raise field.error("two categories share one name")
    return tuple(categories)


def _require_path_params(
    item: Field,
    routes: tuple[Route, ...],
    charges: tuple[tuple[str, int], ...],
    limits: dict[str, LimitDef],
) -> None:
    """Every route of the category has each path parameter its limits count by.

    Linear in routes and limits (a category of thousands of both must load fast).
    """
    wanted = [
        (part[5:], name) for name, _ in charges for part in limits[name].by if part[:5] == "path:"
    ]
    if not wanted or not routes:
        return
    params = [frozenset(parse_pattern(route.pattern).params) for route in routes]
    common = frozenset.intersection(*params)
    for param, limit in wanted:
        if param not in common:
            route = next(r for r, names in zip(routes, params, strict=True) if param not in names)
            raise item.error(
                f"limit {limit!r} counts by path parameter {{{param}}}, "
                f"which {route.pattern!r} does not have"
            )


# lockouts and penalty


def _statuses(field: Field) -> frozenset[int]:
    values = [entry.integer(minimum=100) for entry in field.items()]
    if any(value > 599 for value in values):
        raise field.error("HTTP statuses are between 100 and 599")
    return frozenset(values)


def _response_name(field: Field, responses: dict[str, ResponseTemplate]) -> str:
    name = field.string()
    if name not in responses:
        raise field.error(f"no response named {name!r}; use one of {', '.join(responses)}")
    return name


def _lockouts(
    field: Field,
    categories: tuple[Category, ...],
    responses: dict[str, ResponseTemplate],
    patterns: _PatternText,
) -> tuple[Lockout, ...]:
    known = {category.name for category in categories}
    lockouts: list[Lockout] = []
    for name, entry in field.mapping().items():
        spec = entry.mapping(
            {
                "match", "categories", "failure_status", "by", "threshold", "window", "block",
                "escalation", "max_block", "response",
            },
            required=("threshold", "window", "block"),
        )  # fmt: skip
        if "match" not in spec and "categories" not in spec:
            raise entry.error("say which requests are attempts: 'match' or 'categories'")
        names = spec["categories"].strings() if "categories" in spec else ()
        for category in names:
            if category not in known:
                raise spec["categories"].error(f"no category named {category!r}")
        lockouts.append(
            Lockout(
                name=name,
                routes=_routes(spec["match"], patterns) if "match" in spec else (),
                categories=names,
                failure_status=(
                    _statuses(spec["failure_status"])
                    if "failure_status" in spec
                    else frozenset({401, 403})
                ),
                by=_by(spec["by"]) if "by" in spec else ("ip",),
                threshold=spec["threshold"].integer(minimum=1),
                window=spec["window"].duration(),
                block=spec["block"].duration(),
                escalation=spec["escalation"].number(minimum=1) if "escalation" in spec else 1.0,
                max_block=_max_block(spec),
                response=(
                    _response_name(spec["response"], responses) if "response" in spec else "blocked"
                ),
            )
        )
    return tuple(lockouts)


def _penalty(field: Field, responses: dict[str, ResponseTemplate]) -> Penalty:
    spec = field.mapping(
        {"rejections", "window", "block", "by", "escalation", "max_block", "response"},
        required=("rejections", "window", "block"),
    )
    return Penalty(
        rejections=spec["rejections"].integer(minimum=1),
        window=spec["window"].duration(),
        block=spec["block"].duration(),
        by=_by(spec["by"]) if "by" in spec else ("ip",),
        escalation=spec["escalation"].number(minimum=1) if "escalation" in spec else 1.0,
        max_block=_max_block(spec),
        response=(
            _response_name(spec["response"], responses) if "response" in spec else "rate_limited"
        ),
    )


def _max_block(spec: dict[str, Field]) -> float | None:
    """``max_block``, which caps escalated blocks, so no shorter than ``block`` itself."""
    if "max_block" not in spec:
        return None
    max_block = spec["max_block"].duration()
    if max_block < spec["block"].duration():
        raise spec["max_block"].error(
            f"max_block ({max_block:g}s) is shorter than block ({spec['block'].duration():g}s)"
        )
    return max_block


# identity, headers, responses


def _identity(field: Field, plans: dict[str, Plan]) -> Identity:
    spec = field.mapping(
        {
            "api_key_headers", "bearer", "trusted_proxies", "forwarded_header", "ipv4_prefix",
            "ipv6_prefix", "networks", "node_header", "user_header",
        }
    )  # fmt: skip
    headers = spec["api_key_headers"].strings() if "api_key_headers" in spec else ("X-API-Key",)
    for name in headers:
        if not _HEADER_RE.match(name):
            raise spec["api_key_headers"].error(f"{name!r} is not a header name")
    proxies = _cidrs(spec["trusted_proxies"]) if "trusted_proxies" in spec else ()
    return Identity(
        api_key_headers=headers,
        bearer=spec["bearer"].boolean() if "bearer" in spec else True,
        trusted_proxies=proxies,
        forwarded_header=(
            _forwarded_header(spec["forwarded_header"])
            if "forwarded_header" in spec
            else "x-forwarded-for"
        ),
        ipv4_prefix=_prefix(spec["ipv4_prefix"], 32) if "ipv4_prefix" in spec else 32,
        ipv6_prefix=_prefix(spec["ipv6_prefix"], 128) if "ipv6_prefix" in spec else 64,
        networks=_networks(spec["networks"], plans) if "networks" in spec else (),
        node_header=spec["node_header"].string() if "node_header" in spec else "X-Node-ID",
        user_header=spec["user_header"].string() if "user_header" in spec else None,
    )


def _cidrs(field: Field) -> tuple[str, ...]:
    """IP networks (a bare address is a network of one)."""
    networks = field.strings()
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise field.error(f"{network!r} is not an IP network such as 10.0.0.0/8") from None
    return networks


def _networks(field: Field, plans: dict[str, Plan]) -> tuple[Network, ...]:
    """``identity.networks``: client ranges that are exempt or given a plan, in file order."""
    networks: list[Network] = []
    for item in field.items():
        spec = item.mapping({"cidr", "exempt", "plan"}, required=("cidr",))
        exempt = spec["exempt"].boolean() if "exempt" in spec else False
        plan = spec["plan"].string() if "plan" in spec else None
        if exempt == (plan is not None):
            raise item.error(
                "give a network either 'exempt: true' or a 'plan' (its callers without a key)"
            )
        if plan is not None and plan not in plans:
            raise spec["plan"].error(f"no plan named {plan!r}")
        networks.append(Network(_cidrs(spec["cidr"]), exempt=exempt, plan=plan))
    return tuple(networks)


def _forwarded_header(field: Field) -> ForwardedHeader:
    """The header the trusted proxies write, in any case: ``X-Forwarded-For`` is fine."""
    value = field.value.strip().lower() if isinstance(field.value, str) else None
    if value not in FORWARDED_HEADERS:
        raise field.error(
            f"expected the header your trusted proxies write: {', '.join(FORWARDED_HEADERS)}; "
            f"got {field.value!r}"
        )
    return value  # type: ignore[return-value]  # one of the literals, checked above


def _prefix(field: Field, bits: int) -> int:
    """A network prefix length clients are counted by: 1 to ``bits``."""
    value = field.integer(minimum=1)
    if value > bits:
        raise field.error(f"a prefix length is between 1 and {bits}, got {value}")
    return value


def _headers(field: Field) -> HeaderSettings:
    styles = ("x-ratelimit", "ietf", "both", "none")
    if isinstance(field.value, str):
        return HeaderSettings(style=field.string(choices=styles))  # type: ignore[arg-type]
    spec = field.mapping({"style", "report", "retry_after"})
    report_window = None
    if "report" in spec and spec["report"].value != "tightest":
        report = spec["report"]
        text = report.value
        if isinstance(text, str) and text.strip().lower() in ("second", "minute", "hour", "day"):
            text = "1 " + text.strip()
        report_window = Field(text, report.path, report.line, report.file).duration()
    return HeaderSettings(
        style=spec["style"].string(choices=styles) if "style" in spec else "x-ratelimit",  # type: ignore[arg-type]
        report_window=report_window,
        retry_after=spec["retry_after"].boolean() if "retry_after" in spec else True,
    )


#: the built-in answers: kind -> (status, title, code, message, typed extras)
_DEFAULT_ANSWERS: dict[str, tuple[int, str, str, str, dict[str, str]]] = {
    "rate_limited": (
        429, "Too Many Requests", "rate_limited",
        "Rate limit exceeded. Retry after {retry_after} seconds.",
        {"retry_after": "{retry_after}"},
    ),
    "unauthorized": (401, "Unauthorized", "unauthorized", "A valid API key is required.", {}),
    "blocked": (
        429, "Too Many Requests", "blocked", "Blocked after too many failed attempts from {ip}.",
        {"retry_after": "{retry_after}"},
    ),
    "bad_request": (400, "Bad Request", "bad_request", "{detail}", {}),
    "unavailable": (
        503, "Service Unavailable", "unavailable", "Rate limiting is unavailable.", {}
    ),
}  # fmt: skip


def _default_responses(style: str, docs_url: str) -> dict[str, ResponseTemplate]:
    """The built-in answers as JSON errors, or as RFC 9457 problem details."""
    responses: dict[str, ResponseTemplate] = {}
    for kind, (status, title, code, message, extra) in _DEFAULT_ANSWERS.items():
        if style == "problem":
            # the URL is text of the template, not a placeholder: its braces are literal
            type_url = docs_url.replace("{", "{{").replace("}", "}}") or "about:blank"
            body: dict[str, Any] = {"type": type_url, "title": title}
            body.update(status=status, detail=message, **extra)
            responses[kind] = ResponseTemplate(status, "application/problem+json", body)
        else:
            error = {"code": code, "message": message, **extra}
            responses[kind] = ResponseTemplate(status, "application/json", {"error": error})
    return responses


def _responses(field: Field | None, docs_url: str) -> dict[str, ResponseTemplate]:
    if field is None:
        return _default_responses("json", docs_url)
    spec = field.mapping({"style", *_RESPONSE_KINDS})
    style = spec["style"].string(choices=("json", "problem")) if "style" in spec else "json"
    responses = _default_responses(style, docs_url)
    for kind in _RESPONSE_KINDS:
        if kind not in spec:
            continue
        entry = spec[kind].mapping({"status", "content_type", "body"}, required=("body",))
        default = responses[kind]
        status = entry["status"].integer(minimum=100) if "status" in entry else default.status
        if status > 599:
            raise entry["status"].error("HTTP statuses are between 100 and 599")
        _check_template(entry["body"])
        content_type = default.content_type
        if "content_type" in entry:
            content_type = _content_type(entry["content_type"])
        responses[kind] = ResponseTemplate(
            status,
            content_type,
            _plain(entry["body"].value),
            entry["body"].line,
        )
    return responses


def _content_type(field: Field) -> str:
    """A media type, sent as a header field: printable ASCII, or no server can send it."""
    value = field.string()
    if not _FIELD_VALUE_RE.match(value):
        raise field.error(f"{value!r} cannot be sent as a Content-Type: printable ASCII only")
    return value


def _check_template(field: Field) -> None:
    value = field.value
    if isinstance(value, dict):
        for child in field.mapping().values():
            _check_template(child)
    elif isinstance(value, list):
        for child in field.items():
            _check_template(child)
    elif isinstance(value, str):
        try:
            fields = [
                (name, spec, conversion)
                for _, name, spec, conversion in string.Formatter().parse(value)
                if name is not None
            ]
        except ValueError as error:
            raise field.error(f"bad template {value!r}: {error}") from None
        for name, spec, conversion in fields:
            if name not in PLACEHOLDERS:
                known = ", ".join(sorted(PLACEHOLDERS))
                raise field.error(f"unknown placeholder {{{name}}}; known: {known}")
            if spec or conversion:
                # "{path:>999999999}" would render a gigabyte: a placeholder is its name
                raise field.error(
                    f"a placeholder takes no format spec or conversion: write {{{name}}}"
                )
    elif value is not None and not isinstance(value, bool | int | float):
        raise field.error(f"a body template holds JSON values, not {type(value).__name__}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise field.error(f"a body template holds JSON numbers, not {value!r}")


def _plain(value: Any) -> Any:
    """Located containers back to plain dicts and lists (for JSON rendering)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
