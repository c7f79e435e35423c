"""A validated :class:`Policy` compiled into what the request path reads.

Everything that can be decided before the first request is decided here: the
router, every plan's limit specs per limit, every key's overrides, the body
templates, the storage key prefixes and the labels of each rate. The request
path then only looks things up. Nothing here is HTTP: the answers
(:mod:`ratekeeper.http.answers`) are written from this and the decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..algorithms import get_algorithm
from ..identity import ClientAddresses, ClientIpResolver, HeaderReader, Identifier
from ..rates import NS_PER_SECOND, Rate
from ..stores.base import LimitSpec
from ..stores.lockouts import LockoutRule
from .bodies import BodyTemplate, BodyTooLargeError
from .errors import PolicyError
from .model import (
    Category,
    KeyEntry,
    LimitDef,
    Lockout,
    Network,
    PlanValue,
    Policy,
    ResponseTemplate,
)
from .router import Router

__all__ = [
    "CompiledCategory",
    "CompiledCharge",
    "CompiledKey",
    "CompiledLockout",
    "CompiledNetwork",
    "CompiledPolicy",
    "compile_policy",
]

Specs = tuple[LimitSpec, ...]
_KEY_KINDS = frozenset({"api_key", "user", "plan"})
_ANONYMOUS_SAFE = frozenset({"ip", "global"})


class CompiledCharge:
    """One limit a category charges: how to key it and at what cost."""

    __slots__ = ("by", "cost", "default_cap", "default_labels", "default_specs",
                 "is_concurrency", "name", "prefix", "shadow", "ttl")  # fmt: skip

    def __init__(
        self,
        policy: Policy,
        limit: LimitDef,
        cost: int,
        defaults: tuple[Specs, tuple[str, ...]] | None = None,
    ) -> None:
        self.name = limit.name
        self.by = limit.by
        self.cost = cost
        self.shadow = limit.shadow
        self.is_concurrency = limit.is_concurrency
        self.ttl = limit.lease_ttl
        self.default_cap = limit.concurrency
        self.prefix = f"{policy.name}:{limit.name}:"
        self.default_specs: Specs | None = None
        self.default_labels: tuple[str, ...] = ()
        if limit.rates is not None:
            # ``defaults``: the limit's specs worked out once for every category charging it
            self.default_specs, self.default_labels = defaults or _specs(limit, limit.rates)


class CompiledLockout:
    """A lockout rule with the key prefix of its counters."""

    __slots__ = ("by", "categories", "failure_status", "name", "prefix", "refuses", "response",
                 "rule")  # fmt: skip

    def __init__(self, policy: Policy, lockout: Lockout) -> None:
        self.name = lockout.name
        #: how a decision it blocks names it (``decision.refused_by``)
        self.refuses = f"lockout:{lockout.name}"
        self.categories = lockout.categories
        self.by = lockout.by
        self.failure_status = lockout.failure_status
        self.response = lockout.response
        self.prefix = f"{policy.name}:lockout:{lockout.name}:"
        self.rule = LockoutRule(
            threshold=lockout.threshold,
            window=lockout.window,
            block=lockout.block,
            escalation=lockout.escalation,
            max_block=lockout.max_block,
        )


class CompiledCategory:
    """A category as the request path needs it."""

    __slots__ = ("charges", "concurrency", "exempt", "lockouts", "name", "needs_identity",
                 "rate_charges", "require_key")  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self.exempt = False
        self.needs_identity = False
        self.require_key = False
        self.charges: tuple[CompiledCharge, ...] = ()
        self.rate_charges: tuple[CompiledCharge, ...] = ()
        self.concurrency: tuple[CompiledCharge, ...] = ()
        self.lockouts: tuple[CompiledLockout, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledKey:
    """A known key: its id, plan and per-limit overrides."""

    id: str
    plan: str
    user: str | None
    specs: dict[str, tuple[Specs, tuple[str, ...]]]
    caps: dict[str, int | None]


@dataclass(frozen=True, slots=True)
class CompiledPlan:
    """A plan's own values; a limit it does not name has the limit's default (charging)."""

    name: str
    specs: dict[str, tuple[Specs, tuple[str, ...]]]
    caps: dict[str, int | None]


class CompiledNetwork:
    """A policy network as the request path needs it: exempt, or the plan of its keyless callers."""

    __slots__ = ("exempt", "plan")

    def __init__(self, exempt: bool, plan: CompiledPlan | None) -> None:
        self.exempt = exempt
        self.plan = plan


class CompiledPolicy:
    """The request path's view of a policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.name = policy.name
        self.plans = {
            name: _plan(policy, plan.name, plan.limits) for name, plan in policy.plans.items()
        }
        self.anonymous_plan = self.plans[policy.anonymous_plan] if policy.anonymous_plan else None
        #: an unknown key counts as no key: the plan of the caller's network, else
        #: the anonymous plan (401 when there is neither)
        self.unknown_as_anonymous = policy.unknown_key == "anonymous"
        self.keys: dict[str, CompiledKey] = {
            entry.sha256: compile_key(policy, entry) for entry in policy.keys
        }
        identity = policy.identity
        self.api_key_headers = tuple(name.lower() for name in identity.api_key_headers)
        self.bearer = identity.bearer
        self.node_header = identity.node_header.lower()
        self.user_header = identity.user_header.lower() if identity.user_header else None
        self.ip_resolver = ClientIpResolver(identity.trusted_proxies, identity.forwarded_header)
        #: the form a client IP is counted by (its /64 for IPv6, by default) and
        #: the policy network it is in
        self.client_addresses: ClientAddresses[CompiledNetwork] = ClientAddresses(
            identity.ipv4_prefix,
            identity.ipv6_prefix,
            ((network.cidrs, self._network(network)) for network in identity.networks),
        )
        lockouts = {lockout.name: CompiledLockout(policy, lockout) for lockout in policy.lockouts}
        # worked out once for every category (a loop per category was quadratic in a
        # policy of many categories and many plans, keys or lockouts)
        overridden = frozenset(
            [name for plan in policy.plans.values() for name in plan.limits]
            + [name for key in policy.keys for name in key.limits]
        )
        #: the limits a key of the registry may set for itself: those a plan or a
        #: policy key sets, every concurrency cap and every limit without a default
        #: (a limit with one value for every caller is compiled as such)
        self.overridable = overridden | frozenset(
            limit.name
            for limit in policy.limits.values()
            if limit.rates is None or limit.is_concurrency
        )
        lockouts_of: dict[str, list[CompiledLockout]] = {}
        for lockout in policy.lockouts:
            for name in dict.fromkeys(lockout.categories):
                lockouts_of.setdefault(name, []).append(lockouts[lockout.name])
        defaults = {
            limit.name: _specs(limit, limit.rates)
            for limit in policy.limits.values()
            if limit.rates is not None
        }
        self.categories = tuple(
            _category(
                policy, category, tuple(lockouts_of.get(category.name, ())), overridden, defaults
            )
            for category in policy.categories
        )
        self.router: Router[CompiledCategory] = Router(
            (route, compiled)
            for category, compiled in zip(policy.categories, self.categories, strict=True)
            for route in category.routes
        )
        self.lockout_router: Router[CompiledLockout] = Router(
            (route, lockouts[lockout.name])
            for lockout in policy.lockouts
            for route in lockout.routes
        )
        self.has_route_lockouts = len(self.lockout_router) > 0
        self.penalty_rule: LockoutRule | None = None
        self.penalty_prefix = f"{policy.name}:penalty:"
        if policy.penalty is not None:
            penalty = policy.penalty
            self.penalty_rule = LockoutRule(
                threshold=penalty.rejections,
                window=penalty.window,
                block=penalty.block,
                escalation=penalty.escalation,
                max_block=penalty.max_block,
            )
        self.bodies = {
            kind: _body(policy, kind, template) for kind, template in policy.responses.items()
        }
        #: no lockouts and no penalty: a request is never blocked and feeds no counter
        #: after its response, so ``check`` skips that bookkeeping
        self.simple = not policy.lockouts and policy.penalty is None
        self.wanted_headers = self._wanted_headers(policy)
        #: reads those headers, the same way from any face (ASGI, WSGI, a mapping)
        self.header_reader = HeaderReader(self.wanted_headers)
        #: writes what a limit, lockout or the penalty counts a caller by
        self.identifier = Identifier(self.node_header, identity.node_header, self.user_header)

    def _network(self, network: Network) -> CompiledNetwork:
        plan = self.plans[network.plan] if network.plan is not None else None
        return CompiledNetwork(network.exempt, plan)

    def _wanted_headers(self, policy: Policy) -> frozenset[str]:
        """The request headers (lower-case) the request path can read, and only those.

        Every header read costs the middleware a scan and a decode per request,
        so a header enters only if something reads it: the API key headers
        when a category identifies callers, the one forwarding header the
        trusted proxies write (when proxies are trusted), and the headers a
        charged limit, a lockout or the penalty counts by (``node``,
        ``user``, ``header:NAME``).
        """
        wanted: set[str] = set()
        if any(category.needs_identity for category in self.categories):
            wanted.update(self.api_key_headers)
            if self.bearer:
                wanted.add("authorization")
        if self.ip_resolver.enabled:
            wanted.add(self.ip_resolver.header)
        counted_by = [charge.by for category in self.categories for charge in category.charges]
        counted_by.extend(lockout.by for lockout in policy.lockouts)
        if policy.penalty is not None:
            counted_by.append(policy.penalty.by)
        for by in counted_by:
            for part in by:
                if part == "node":
                    wanted.add(self.node_header)
                elif part == "user" and self.user_header:
                    wanted.add(self.user_header)
                elif part.startswith("header:"):
                    wanted.add(part[7:].lower())
        return frozenset(wanted)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Compile ``policy``; raises :class:`PolicyError` for what validation cannot see.

    Compiled once per policy: the loader compiles it to check it, and every
    limiter built on it afterwards (a ``Limiter``, its async twin in a
    middleware) shares that compiled form. It holds no per-limiter state, only
    answers worked out from the policy and bounded memos of them.
    """
    compiled: CompiledPolicy | None = policy._compiled
    if compiled is None:
        compiled = CompiledPolicy(policy)
        object.__setattr__(policy, "_compiled", compiled)  # a cache, not part of the value
    return compiled


def _body(policy: Policy, kind: str, template: ResponseTemplate) -> BodyTemplate:
    try:
        return BodyTemplate(
            template.body, status=template.status, content_type=template.content_type
        )
    except BodyTooLargeError as error:
        raise PolicyError(
            str(error), file=policy.file, line=template.line, field=f"responses.{kind}.body"
        ) from None


def _specs(limit: LimitDef, rates: tuple[Rate, ...]) -> tuple[Specs, tuple[str, ...]]:
    algorithm = get_algorithm(limit.algorithm)
    if limit.burst is not None:
        rates = tuple(Rate(rate.limit, rate.window_ns, limit.burst) for rate in rates)
    specs = tuple(LimitSpec.of(algorithm, rate) for rate in rates)
    if len(specs) == 1:
        return specs, (limit.name,)
    return specs, tuple(f"{limit.name}-{_window_label(spec.window_ns)}" for spec in specs)


def _window_label(window_ns: int) -> str:
    seconds, rest = divmod(window_ns, NS_PER_SECOND)
    if rest:
        return f"{window_ns}ns"
    for size, suffix in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def _values(
    policy: Policy, values: dict[str, PlanValue]
) -> tuple[dict[str, tuple[Specs, tuple[str, ...]]], dict[str, int | None]]:
    specs: dict[str, tuple[Specs, tuple[str, ...]]] = {}
    caps: dict[str, int | None] = {}
    for name, value in values.items():
        limit = policy.limits[name]
        if limit.is_concurrency:
            caps[name] = value if isinstance(value, int) else None
        else:
            specs[name] = _specs(limit, value if isinstance(value, tuple) else ())
    return specs, caps


def _plan(policy: Policy, name: str, values: dict[str, PlanValue]) -> CompiledPlan:
    """The plan's own values only: a limit it does not name has its default, which the
    charger takes from the limit (copying every default into every plan was plans x
    limits of work and memory: a 1 MiB policy of both ran out of memory)."""
    specs, caps = _values(policy, values)
    return CompiledPlan(name, specs, caps)


def compile_key(policy: Policy, entry: KeyEntry) -> CompiledKey:
    """A key as the request path needs it (the policy's own, or a registry's)."""
    specs, caps = _values(policy, entry.limits)
    return CompiledKey(entry.id, entry.plan, entry.user, specs, caps)


def _category(
    policy: Policy,
    category: Category,
    lockouts: tuple[CompiledLockout, ...],
    overridden: frozenset[str],
    defaults: dict[str, tuple[Specs, tuple[str, ...]]],
) -> CompiledCategory:
    """``lockouts``: those naming the category; ``overridden``: limits a plan or key sets;
    ``defaults``: each limit's default specs and labels."""
    compiled = CompiledCategory(category.name)
    compiled.exempt = category.exempt
    compiled.lockouts = lockouts
    if category.exempt:
        return compiled
    charges = tuple(
        CompiledCharge(policy, policy.limits[name], cost, defaults.get(name))
        for name, cost in category.charges
    )
    compiled.charges = charges
    compiled.rate_charges = tuple(charge for charge in charges if not charge.is_concurrency)
    compiled.concurrency = tuple(charge for charge in charges if charge.is_concurrency)
    plan_dependent = any(
        charge.default_specs is None or charge.is_concurrency or charge.name in overridden
        for charge in charges
    )
    key_parts = any(part in _KEY_KINDS for charge in charges for part in charge.by)
    only_anonymous_safe = all(part in _ANONYMOUS_SAFE for charge in charges for part in charge.by)
    if category.require_key is None:
        compiled.require_key = not only_anonymous_safe or plan_dependent
    else:
        compiled.require_key = category.require_key
    compiled.needs_identity = compiled.require_key or plan_dependent or key_parts
    if not compiled.require_key and compiled.needs_identity and policy.anonymous_plan is None:
        for charge in charges:
            if charge.default_specs is None and not charge.is_concurrency:
                raise PolicyError(
                    f"category {category.name!r} takes requests without a key, but limit "
                    f"{charge.name!r} has no default rate and there is no anonymous_plan",
                    file=policy.file,
                )
    return compiled
