"""A human-readable summary of a policy, for ``ratekeeper policy check``."""

from __future__ import annotations

from ..rates import Rate
from .model import Identity, PlanValue, Policy

__all__ = ["describe_policy"]


def _value(value: PlanValue | tuple[Rate, ...] | None, concurrency: bool) -> str:
    if concurrency:
        return "unlimited in flight" if value is None else f"{value} in flight"
    if value is None:
        return "(set by plan)"
    if isinstance(value, tuple):
        return "; ".join(str(rate) for rate in value) if value else "unlimited"
    return str(value)


def _clients(identity: Identity) -> list[str]:
    """Who the client is: whose forwarding header is read, what it is counted by, its networks."""
    if identity.trusted_proxies:
        source = (
            f"{identity.forwarded_header} from {', '.join(identity.trusted_proxies)}, else the peer"
        )
    else:
        source = "the peer"
    lines = [
        f"  client IP: {source}; counted by IPv4 /{identity.ipv4_prefix}, "
        f"IPv6 /{identity.ipv6_prefix}"
    ]
    for network in identity.networks:
        what = "exempt" if network.exempt else f"plan {network.plan} (callers without a key)"
        lines.append(f"  network {', '.join(network.cidrs)}: {what}")
    return lines


def describe_policy(policy: Policy) -> list[str]:
    """Lines describing what ``policy`` limits, for people reviewing it."""
    lines = [f"policy {policy.name!r}" + (f": {policy.description}" if policy.description else "")]
    lines.append(f"  default algorithm: {policy.algorithm}; headers: {policy.headers.style}")
    lines.extend(_clients(policy.identity))
    lines.append("  limits:")
    for limit in policy.limits.values():
        default = limit.concurrency if limit.is_concurrency else limit.rates
        flags = " (shadow)" if limit.shadow else ""
        lines.append(
            f"    {limit.name}: by {'+'.join(limit.by)}, "
            f"{'concurrency' if limit.is_concurrency else limit.algorithm}, "
            f"default {_value(default, limit.is_concurrency)}{flags}"
        )
    lines.append("  plans:")
    for plan in policy.plans.values():
        marker = " (anonymous callers)" if plan.name == policy.anonymous_plan else ""
        values = ", ".join(
            f"{name}={_value(value, policy.limits[name].is_concurrency)}"
            for name, value in plan.limits.items()
        )
        lines.append(f"    {plan.name}{marker}: {values or 'limit defaults'}")
    lines.append(f"  keys: {len(policy.keys)} (stored as SHA-256)")
    lines.append("  categories (exact paths first, then patterns in this order):")
    for category in policy.categories:
        routes = ", ".join(
            f"{'|'.join(sorted(route.methods)) if route.methods else '*'} {route.pattern}"
            for route in category.routes
        )
        if category.exempt:
            what = "exempt"
        elif category.charges:
            what = "charges " + ", ".join(
                name if cost == 1 else f"{name} x{cost}" for name, cost in category.charges
            )
        else:
            what = "charges nothing"
        lines.append(f"    {category.name}: {routes} -> {what}")
    for lockout in policy.lockouts:
        lines.append(
            f"  lockout {lockout.name}: {lockout.threshold} failures "
            f"({', '.join(map(str, sorted(lockout.failure_status)))}) within {lockout.window:g}s "
            f"by {'+'.join(lockout.by)} block {lockout.block:g}s"
        )
    if policy.penalty is not None:
        penalty = policy.penalty
        lines.append(
            f"  penalty: {penalty.rejections} refusals within {penalty.window:g}s "
            f"by {'+'.join(penalty.by)} block {penalty.block:g}s"
        )
    return lines
