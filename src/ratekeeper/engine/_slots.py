"""One decision, one slot: the policies a store with one slot per decision can decide.

Redis Cluster runs a script only on keys of one hash slot. Every key of a
decision puts the identity it counts by in a hash tag (``scanner:api:{demo-pro}``,
:class:`ratekeeper.identity.Identifier`), so a decision's keys share a slot
exactly when its charges, concurrency caps, lockouts and penalty all count by
the same identity (``by``). A category whose rates count by ``api_key`` and
whose lockout counts by ``ip`` needs two slots: such a policy is refused when
the limiter is built on a store that declares ``one_slot`` (a clear error
naming the category and the identities), not at the first request. Memory and
standalone Redis take any policy.

A route lockout (``lockouts: {match: ...}``) counts for the requests its
routes match, whatever their category: it is taken as part of a category's
decision unless the two cannot match one request (an exact path of one that
the other does not match, or no method in common). Two patterns are assumed to
overlap.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..policy.errors import PolicyError
from ..policy.model import Category, Policy, Route
from ..policy.patterns import compile_pattern
from ..policy.router import Router

__all__ = ["check_one_slot", "decision_identities"]


def decision_identities(policy: Policy, category: Category) -> dict[tuple[str, ...], list[str]]:
    """What one decision of ``category`` counts by: each identity, and what counts by it."""
    found: dict[tuple[str, ...], list[str]] = {}
    for name, _ in category.charges:
        limit = policy.limits[name]
        kind = "cap" if limit.is_concurrency else "limit"
        found.setdefault(limit.by, []).append(f"{kind} {name}")
    for lockout in policy.lockouts:
        if category.name in lockout.categories or _may_overlap(category.routes, lockout.routes):
            found.setdefault(lockout.by, []).append(f"lockout {lockout.name}")
    if policy.penalty is not None:
        found.setdefault(policy.penalty.by, []).append("the penalty")
    return found


def check_one_slot(policy: Policy) -> None:
    """Refuse ``policy`` if one decision of a category would need keys on two slots.

    Raises :class:`~ratekeeper.policy.PolicyError` (a ``ValueError``) naming
    the first such category and the identities its decision counts by.
    """
    for category in policy.categories:
        if category.exempt or not category.charges:
            continue
        found = decision_identities(policy, category)
        if len(found) > 1:
            identities = "; ".join(
                f"{'+'.join(by)} ({', '.join(what)})" for by, what in found.items()
            )
            raise PolicyError(
                f"category {category.name!r} counts one decision by {len(found)} identities: "
                f"{identities}. This store keeps one decision on one slot (Redis Cluster), "
                "so its keys must share one identity: count them all by one of these",
                file=policy.file,
            )


def _may_overlap(ours: Iterable[Route], theirs: Iterable[Route]) -> bool:
    """Whether a request could match a route of ``ours`` and one of ``theirs``."""
    theirs = tuple(theirs)
    return any(_routes_overlap(a, b) for a in ours for b in theirs)


def _routes_overlap(a: Route, b: Route) -> bool:
    methods = _common_methods(a.methods, b.methods)
    if methods is not None and not methods:
        return False
    exact_a, exact_b = compile_pattern(a.pattern).exact, compile_pattern(b.pattern).exact
    if exact_a is None and exact_b is None:
        return True  # two patterns: assume they can meet
    path, other = (exact_a, b) if exact_a is not None else (exact_b, a)
    assert path is not None
    router: Router[bool] = Router([(other, True)])
    return any(router.match(method, path) is not None for method in methods or ("GET",))


def _common_methods(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The methods both admit; ``None`` when both admit any."""
    if a is None:
        return b
    if b is None:
        return a
    return a & b
