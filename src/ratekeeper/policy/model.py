"""The validated policy: what a provider's "Rate Limits" page says, as data.

These frozen dataclasses are what :func:`~ratekeeper.policy.load_policy`
returns after validation. They are read once, by the compiler, which turns them
into the plain lookup tables the request path uses; nothing here runs per
request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..rates import Rate
from .envoy import EnvoyMapping

__all__ = [
    "BY_KINDS",
    "Category",
    "HeaderSettings",
    "Identity",
    "KeyEntry",
    "LimitDef",
    "Lockout",
    "Network",
    "Penalty",
    "Plan",
    "Policy",
    "ResponseTemplate",
    "Route",
]

#: what a limit can count by; ``header:NAME`` and ``path:PARAM`` take an argument
BY_KINDS = ("api_key", "ip", "user", "node", "global", "plan", "header", "path")

HeaderStyle = Literal["x-ratelimit", "ietf", "both", "none"]
ForwardedHeader = Literal["x-forwarded-for", "forwarded", "x-real-ip"]
PlanValue = tuple[Rate, ...] | int | None  # rates; a concurrency cap; None = unlimited cap


@dataclass(frozen=True, slots=True)
class LimitDef:
    """A named limit: what it counts by, how, and its rate when no plan says.

    ``rates`` is ``None`` when the limit has no default (every plan must give
    one) and ``()`` when it is unlimited. A ``concurrency`` limit caps requests
    in flight instead of requests per window.
    """

    name: str
    by: tuple[str, ...]
    algorithm: str
    rates: tuple[Rate, ...] | None = None
    concurrency: int | None = None
    is_concurrency: bool = False
    burst: int | None = None
    shadow: bool = False
    lease_ttl: float = 60.0


@dataclass(frozen=True, slots=True)
class Plan:
    """A tier: the rate (or cap) of each named limit for its keys."""

    name: str
    limits: dict[str, PlanValue]


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """A known API key, by hash only; ``id`` names it in keys, logs and metrics."""

    id: str
    sha256: str
    plan: str
    name: str = ""
    user: str | None = None
    limits: dict[str, PlanValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Route:
    """``methods`` (``None`` for any) and a path pattern."""

    methods: frozenset[str] | None
    pattern: str


@dataclass(frozen=True, slots=True)
class Category:
    """Endpoints that share limits: what they match and what they are charged.

    ``charges`` pairs limit names with a cost per request. ``require_key`` is
    ``None`` when it follows from the limits (a category limited only per
    client IP needs no key).
    """

    name: str
    routes: tuple[Route, ...]
    exempt: bool = False
    charges: tuple[tuple[str, int], ...] = ()
    require_key: bool | None = None


@dataclass(frozen=True, slots=True)
class Lockout:
    """Failed attempts (by response status) that block a client for a while."""

    name: str
    routes: tuple[Route, ...]
    categories: tuple[str, ...]
    failure_status: frozenset[int]
    by: tuple[str, ...]
    threshold: int
    window: float
    block: float
    escalation: float = 1.0
    max_block: float | None = None
    response: str = "blocked"


@dataclass(frozen=True, slots=True)
class Penalty:
    """Block clients that keep sending requests while limited."""

    rejections: int
    window: float
    block: float
    by: tuple[str, ...] = ("ip",)
    escalation: float = 1.0
    max_block: float | None = None
    response: str = "rate_limited"


@dataclass(frozen=True, slots=True)
class Network:
    """Client IP ranges the policy names: exempt from every limit, or given a plan.

    A network's ``plan`` is the plan of its callers that present no API key
    (a key's own plan wins); it stands in for ``anonymous_plan`` there.
    """

    cidrs: tuple[str, ...]
    exempt: bool = False
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Where a request's identity comes from.

    ``forwarded_header`` is the one header the ``trusted_proxies`` write the
    client's address in; any other forwarding header is the client's own
    say and is never read. Clients are counted (limits, lockouts, penalty)
    by their network: ``ipv6_prefix`` bits of an IPv6 address, ``ipv4_prefix``
    bits of an IPv4 one. ``networks`` are matched, in order, against the
    client IP found behind the proxies.
    """

    api_key_headers: tuple[str, ...] = ("X-API-Key",)
    bearer: bool = True
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: ForwardedHeader = "x-forwarded-for"
    ipv4_prefix: int = 32
    ipv6_prefix: int = 64
    networks: tuple[Network, ...] = ()
    node_header: str = "X-Node-ID"
    user_header: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderSettings:
    """Which rate limit headers to send and which limit they describe.

    ``report_window`` (seconds) makes ``X-RateLimit-Limit`` always the limit of
    that window (flowcms documents it as "the per-minute limit of the tier");
    on a 429 from another window it reads remaining 0 and the reset at which
    the request could pass. ``None`` reports the tightest limit: the one that
    refused the request, else the one with the least remaining.
    """

    style: HeaderStyle = "x-ratelimit"
    report_window: float | None = None
    retry_after: bool = True


@dataclass(frozen=True, slots=True)
class ResponseTemplate:
    """A status, content type and JSON body template with ``{placeholders}``.

    ``line``: where the body is written in the policy file, for the compiler's errors.
    """

    status: int
    content_type: str
    body: Any
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A whole validated policy."""

    name: str
    file: str | None
    description: str
    identity: Identity
    algorithm: str
    anonymous_plan: str | None
    unknown_key: Literal["reject", "anonymous"]
    headers: HeaderSettings
    responses: dict[str, ResponseTemplate]
    docs_url: str
    limits: dict[str, LimitDef]
    plans: dict[str, Plan]
    keys: tuple[KeyEntry, ...]
    categories: tuple[Category, ...]
    lockouts: tuple[Lockout, ...] = ()
    penalty: Penalty | None = None
    #: how Envoy's descriptors map to categories and callers (``policy/envoy.py``)
    envoy: EnvoyMapping | None = None
    #: the compiled form, made once by ``compile_policy`` and shared by every limiter
    #: of this policy (a ``CompiledPolicy``; not part of the policy's value)
    _compiled: Any = field(default=None, init=False, repr=False, compare=False)
