"""The policy-driven face: "may this HTTP request pass, and what do we answer?".

>>> limiter = Limiter(load_policy("examples/scanner.yaml"), store=MemoryStore())  # doctest: +SKIP
>>> d = limiter.check(method="POST", path="/api/scans",
...                   headers={"X-API-Key": "demo-free"}, client_ip="203.0.113.7")  # doctest: +SKIP
>>> d.allowed, d.plan, d.category, d.status_code                                # doctest: +SKIP
(True, 'free', 'scans', 200)

One request goes: match the route to a category; exempt stops there; identify
the caller (API key, plan, client IP behind trusted proxies); refuse a blocked
client (lockout or penalty); charge every limit of the category in one atomic
store step; answer with headers and, when refused, the policy's body.

With ``remember_refusals=True`` (for stores across a network), a counter that
refused one unit is remembered until it could pass: requests that charge it
meanwhile are refused without a round trip (as Envoy's over-limit cache does).
That never admits what the store would refuse; such a refusal reports only the
limit that refused (``statuses`` and the IETF fields list that one).

Concurrency caps and login lockouts live as long as the response, so ``check``
reports them (``decision.concurrency``, ``decision.lockouts``). With
``lease=True`` it also takes the leases, within the same all-or-nothing
decision (a request over a cap charges no rate); the middleware gives them back
with ``release`` once the response is over and feeds the response status to
:meth:`Limiter.record_response`.
``Limiter`` and ``AsyncLimiter`` share all of this but the store calls.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._memo import BoundedMemo
from ..identity import api_key_from, lower_headers
from ..policy import Policy, load_policy
from ..policy.compiler import (
    CompiledCategory,
    CompiledKey,
    CompiledLockout,
    CompiledNetwork,
    CompiledPlan,
    compile_policy,
)
from ..policy.router import RequestMemo, RouteMemo
from ..rates import NS_PER_SECOND as _NS
from ..stores.base import Charge, ChargeResult, Store, StoreUnavailableError
from ..stores.lockouts import Block, LockoutRule
from ..stores.memory import MemoryStore
from ..text import safe_text
from ._charging import BadRequestError, Charger
from ._decisions import (
    ADMITTED,
    BAD_REQUEST,
    BLOCKED,
    EXEMPT,
    LIMITED,
    OVER_CAP,
    UNAUTHORIZED,
    UNAVAILABLE,
    Answers,
    AnswersFactory,
    PolicyDecision,
    tightest,
)
from ._lanes import Lane
from ._refusals import RefusalCache

__all__ = ["AsyncLimiter", "Limiter"]

_MAX_API_KEY = 512  # longer presented keys are unknown without hashing them
_MAX_KNOWN_KEYS = 4096
_EMPTY: dict[str, str] = {}
_NO_BLOCKS: tuple[tuple[str, str, int, str], ...] = ()


class _Prepared:
    """What ``check`` knows before it asks the store.

    ``one`` is the request's only charge when that is all there is to decide:
    one enforced (not shadow) charge, no block to check, no lease to take.
    Such a request goes straight to ``store.apply_one`` (the store's lean path
    for exactly this case), and ``raw_headers`` writes its header bytes from
    the numbers.
    """

    __slots__ = ("blocks", "cap_names", "category", "charges", "concurrency", "ip", "key_id",
                 "lockouts", "method", "names", "one", "path", "plan")  # fmt: skip

    def __init__(
        self,
        category: CompiledCategory,
        plan: CompiledPlan | None,
        key_id: str | None,
        ip: str,
        method: str,
        path: str,
        charges: Sequence[Charge],
        names: Sequence[str],
        concurrency: tuple[tuple[str, int, float], ...],
    ) -> None:
        self.category = category
        self.plan = plan
        self.key_id = key_id
        self.ip = ip
        self.method = method
        self.path = path
        self.charges = charges
        self.names = names
        self.concurrency = concurrency
        #: the name of the concurrency limit of each of ``concurrency``
        self.cap_names: tuple[str, ...] = ()
        self.one: Charge | None = None
        # (counter key, response, threshold, what refuses) of each block to check
        self.blocks: Sequence[tuple[str, str, int, str]] = _NO_BLOCKS
        self.lockouts: tuple[tuple[CompiledLockout, str], ...] = ()


class _LimiterCore:
    """Everything but the store calls; see the module docstring.

    ``answers`` makes the renderer of the compiled policy's answers
    (:class:`~ratekeeper.engine.Answers`) that every decision carries. The
    engine imports no HTTP, so it has none of its own: the limiters users
    build (``ratekeeper.Limiter``, ``ratekeeper.AsyncLimiter``) give it
    :class:`ratekeeper.http.answers.PolicyAnswers`.
    """

    def __init__(
        self,
        policy: Policy | str | Path,
        store: Store | None = None,
        *,
        remember_refusals: bool = False,
        answers: AnswersFactory,
    ) -> None:
        if isinstance(policy, str | Path):
            policy = load_policy(policy)
        self.policy = policy
        self.compiled = compiled = compile_policy(policy)
        self.store: Store = store if store is not None else MemoryStore()
        #: writes the answers of this policy's decisions (every decision carries it)
        self.answers: Answers = answers(compiled)
        # the store's clock: every decision says when it was decided
        self._now = self.store.now_ns
        self._charger = Charger(
            compiled.node_header, policy.identity.node_header, compiled.user_header
        )
        # presented key -> its record, for known keys only: skips hashing on repeat
        # requests; process memory only, never written anywhere
        self._known_keys: BoundedMemo[str, CompiledKey] = BoundedMemo(_MAX_KNOWN_KEYS)
        self._rate_limited_status = compiled.bodies["rate_limited"].status
        self._needs_blocks = not compiled.simple
        # (method, path) as requested -> (METHOD, normalized path, match)
        self._routes = RouteMemo(compiled.router)
        # counters known to be over their limit, and until when
        self._refusals = RefusalCache(self.store)
        self._refused = self._refusals.refused
        self._remember = remember_refusals
        self._resolve_ip = compiled.ip_resolver.enabled
        # IPv4 counted whole and no networks: an address without ':' needs no lookup
        self._plain_ipv4 = compiled.client_addresses.plain_ipv4
        # MemoryStore's async face only calls its sync one (no decision waits on
        # I/O): the async limiter calls that directly, one coroutine less
        self._one_in_memory = type(self.store).apply_one_async is MemoryStore.apply_one_async
        # (method, path) as requested -> its lane, or None: see ``lane``
        self._lanes: RequestMemo[Lane | None] = RequestMemo(self._new_lane)
        self._lanes_open = compiled.simple and self._one_in_memory

    # lanes: a route's requests decided by client IP alone (see ratekeeper.engine._lanes)

    def lane(self, method: str, path: str) -> Lane | None:
        """The lane of requests for ``method`` and ``path``, or ``None`` for the general path.

        A lane answers exactly as :meth:`check` (``lease=True``, cost 1) would
        for such a request; the middleware takes it when there is one. No lane
        while any refusal is remembered: those are answered by ``check``.
        """
        if self._refused:
            return None
        lanes = self._lanes
        found = lanes.answers.get((method, path), lanes)  # the memo itself: not kept yet
        if found is lanes:
            return lanes.fill(method, path)
        return found  # type: ignore[return-value]

    def _new_lane(self, method: str, path: str) -> Lane | None:
        if not self._lanes_open:
            return None
        method, path, found = self._routes.route(method, path)
        if found is None:
            return None
        category = found[0]
        if category.exempt or category.needs_identity:
            return None
        charge_plan = self._charger.plan(category, None, None)
        if charge_plan.leases or charge_plan.by_ip is None:
            return None
        head, spec, units, shadow = charge_plan.by_ip
        if shadow:
            return None
        write = self.answers.one_rate_writer(spec.limit)
        if write is None:  # the answer needs more than the numbers
            return None
        compiled = self.compiled
        return Lane(
            category, charge_plan.names, head, spec, units, method, path,
            apply_one=self.store.apply_one, raw_headers=write,
            resolve_ip=compiled.ip_resolver.enabled, addresses=compiled.client_addresses,
            decide=self._lane_decision,
        )  # fmt: skip

    def client_ip(self, peer: str, lowered: dict[str, str]) -> str:
        """The client IP of a request from ``peer``, believing only trusted proxies.

        ``lowered``: the request headers the policy reads, by lower-case name.
        ``peer`` is text from outside: it is escaped here (:mod:`ratekeeper.text`);
        an address taken from a forwarding header is a canonical IP, ASCII.
        """
        if not peer.isascii():
            peer = safe_text(peer)
        if not self._resolve_ip:
            return peer
        return self.compiled.ip_resolver.resolve(peer, lowered)

    def _lane_decision(self, lane: Lane, ip: str, result: ChargeResult) -> PolicyDecision:
        prepared = _Prepared(
            lane.category, None, None, ip, lane.method, lane.path,
            ((lane.spec, lane.key(ip), lane.units, False),), lane.names, (),
        )  # fmt: skip
        return self._decided(prepared, result[0], [result], self._now())

    # the request path, before the store

    def _prepare(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        client_ip: str,
        cost: int,
    ) -> _Prepared | PolicyDecision:
        """Route, identify and plan the charges of one request: all but the store."""
        if cost.__class__ is not int or cost < 1:
            raise ValueError(f"cost must be a positive integer, got {cost!r}")
        compiled = self.compiled
        method, path, found = self._routes.route(method, path)
        if found is None:
            return self._exempt(None, client_ip, method, path)
        category, params = found
        if category.exempt:
            return self._exempt(category.name, client_ip, method, path)
        wanted = compiled.wanted_headers
        lowered = lower_headers(headers, wanted) if headers and wanted else _EMPTY
        ip = self.client_ip(client_ip, lowered)
        # what counters, lockouts and the penalty count the client by (its /64 for
        # IPv6), and the policy network it is in; answers and bodies keep ``ip``
        network: CompiledNetwork | None = None
        if self._plain_ipv4 and ":" not in ip:
            counted = ip
        else:
            counted, network = compiled.client_addresses.lookup(ip)
            if network is not None and network.exempt:
                return self._exempt(category.name, ip, method, path)

        record: CompiledKey | None = None
        plan: CompiledPlan | None = None
        if category.needs_identity:
            raw = api_key_from(lowered, compiled.api_key_headers, compiled.bearer)
            if raw is not None:
                if not raw.isascii():  # header text enters where it is read (ratekeeper.text)
                    raw = safe_text(raw)
                record = self._known_keys.answers.get(raw) or self._lookup_key(raw)
                if record is not None:
                    plan = compiled.plans[record.plan]  # a key's plan wins over its network's
                elif compiled.unknown_as_anonymous:
                    plan = self._keyless_plan(network)
                if plan is None:
                    return self._refuse(UNAUTHORIZED, category.name, None, ip, method, path)
            else:
                plan = self._keyless_plan(network)
                if plan is None and category.require_key:
                    return self._refuse(UNAUTHORIZED, category.name, None, ip, method, path)

        charger = self._charger
        charge_plan = charger.plan(category, record, plan)
        try:
            charges = charger.charges(charge_plan, record, plan, counted, lowered, params, cost)
            leases = (
                charger.leases(charge_plan, record, plan, counted, lowered, params)
                if charge_plan.leases
                else ()
            )
            prepared = _Prepared(
                category, plan, record.id if record is not None else None, ip, method, path,
                charges, charge_plan.names, leases,
            )  # fmt: skip
            if leases:
                prepared.cap_names = charge_plan.cap_names
            if self._needs_blocks:
                self._plan_blocks(prepared, record, plan, counted, lowered, params)
            elif len(charges) == 1 and not leases and not charges[0][3]:
                prepared.one = charges[0]
        except BadRequestError as error:
            decision = self._refuse(
                BAD_REQUEST, category.name, plan.name if plan else None, ip, method, path
            )
            decision.detail = str(error)
            return decision
        return prepared

    def _keyless_plan(self, network: CompiledNetwork | None) -> CompiledPlan | None:
        """The plan of a caller without a (known) key: its network's, else the anonymous plan."""
        if network is not None and network.plan is not None:
            return network.plan
        return self.compiled.anonymous_plan

    def _lookup_key(self, raw: str) -> CompiledKey | None:
        """The record of a presented key, by its SHA-256; remembered when known."""
        if len(raw) > _MAX_API_KEY:
            return None
        record = self.compiled.keys.get(hashlib.sha256(raw.encode()).hexdigest())
        if record is not None:
            self._known_keys.keep(raw, record)
        return record

    def _plan_blocks(
        self,
        prepared: _Prepared,
        record: CompiledKey | None,
        plan: CompiledPlan | None,
        counted: str,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> None:
        """The lockout and penalty counters of ``prepared``; ``counted``: its counted IP."""
        compiled = self.compiled
        identity = self._charger.identity
        lockouts = prepared.category.lockouts
        blocks: list[tuple[str, str, int, str]] = []
        prepared.blocks = blocks
        if compiled.has_route_lockouts:
            found = compiled.lockout_router.match(prepared.method, prepared.path)
            if found is not None and found[0] not in lockouts:
                lockouts = (*lockouts, found[0])
        if lockouts:
            pairs = tuple(
                (lockout, lockout.prefix + identity(
                    lockout.by, record, plan, counted, headers, params
                ))
                for lockout in lockouts
            )  # fmt: skip
            prepared.lockouts = pairs
            blocks.extend(
                (key, lockout.response, lockout.rule.threshold, "lockout:" + lockout.name)
                for lockout, key in pairs
            )
        penalty = self.policy.penalty
        if penalty is not None:
            key = compiled.penalty_prefix + identity(
                penalty.by, record, plan, counted, headers, params
            )
            blocks.append((key, penalty.response, penalty.rejections, "penalty"))

    # assembling decisions: plain data, written into answers by ``self.answers``

    def _exempt(self, category: str | None, ip: str, method: str, path: str) -> PolicyDecision:
        return PolicyDecision(
            self.answers, EXEMPT, True, 200, None, category, None, None, ip, method, path,
            self._now(),
        )  # fmt: skip

    def _refuse(
        self,
        outcome: str,
        category: str | None,
        plan: str | None,
        ip: str,
        method: str,
        path: str,
    ) -> PolicyDecision:
        """A refusal before any counting: ``outcome`` (401 or 400) names its response."""
        return PolicyDecision(
            self.answers, outcome, False, self.compiled.bodies[outcome].status, outcome,
            category, plan, None, ip, method, path, self._now(),
        )  # fmt: skip

    def _blocked(self, prepared: _Prepared, block: Block, index: int) -> PolicyDecision:
        """A blocked client's refusal: the block's threshold is the limit it went over."""
        _, response, threshold, refused_by = prepared.blocks[index]
        now = self._now()
        plan = prepared.plan
        decision = PolicyDecision(
            self.answers, BLOCKED, False, self.compiled.bodies[response].status, response,
            prepared.category.name, plan.name if plan is not None else None, prepared.key_id,
            prepared.ip, prepared.method, prepared.path, now, threshold, 0, block.until,
            (block.until_ns - now) / _NS,
        )  # fmt: skip
        decision.refused_by = refused_by
        return decision

    def _unavailable(self, prepared: _Prepared) -> PolicyDecision:
        """The answer when the store cannot decide and fails closed (503, retry in 1 s)."""
        plan = prepared.plan
        now = self._now()
        return PolicyDecision(
            self.answers, UNAVAILABLE, False, self.compiled.bodies[UNAVAILABLE].status,
            UNAVAILABLE, prepared.category.name, plan.name if plan is not None else None,
            prepared.key_id, prepared.ip, prepared.method, prepared.path, now,
            reset_at=now / _NS + 1.0, retry_after=1.0,
        )  # fmt: skip

    def _known_refusal(self, prepared: _Prepared) -> PolicyDecision | None:
        """The refusal of a request charging a counter known to be over its limit.

        Such a request is answered without asking the store, reporting only
        the limit that refused (:mod:`ratekeeper.engine._refusals`).
        Everything else asks the store.
        """
        found = self._refusals.known(prepared.charges)
        if found is None:
            return None
        index, until, now = found
        known = _Prepared(
            prepared.category, prepared.plan, prepared.key_id, prepared.ip,
            prepared.method, prepared.path, (prepared.charges[index],),
            (prepared.names[index],), prepared.concurrency,
        )  # fmt: skip
        known.lockouts = prepared.lockouts
        return self._decided(known, False, [(False, 0, until, until - now)], now)

    def _decided(
        self, prepared: _Prepared, admitted: bool, results: list[ChargeResult], now: int
    ) -> PolicyDecision:
        """The decision of a request whose charges the store decided at ``now`` (ns)."""
        charges = prepared.charges
        if len(results) == 1 and not charges[0][3]:
            _, remaining, reset, retry = results[0]
            limit, reset_at, retry_after = charges[0][0].limit, reset / _NS, retry / _NS
        else:
            found = tightest(admitted, charges, results)
            if found is None:  # nothing enforced: everything unlimited or shadow
                limit, remaining, reset_at, retry_after = 0, 0, now / _NS, 0.0
            else:
                limit, remaining, reset_at, retry_after = found
        plan = prepared.plan
        decision = PolicyDecision(
            self.answers, ADMITTED if admitted else LIMITED, admitted,
            200 if admitted else self._rate_limited_status, None if admitted else "rate_limited",
            prepared.category.name, plan.name if plan is not None else None, prepared.key_id,
            prepared.ip, prepared.method, prepared.path, now, limit, remaining, reset_at,
            retry_after, charges, results, prepared.names,
        )  # fmt: skip
        decision.concurrency = prepared.concurrency
        decision.lockouts = prepared.lockouts
        if not admitted and self._remember and len(results) == len(prepared.charges):
            self._refusals.remember(prepared.charges, results)
        return decision

    def over_concurrency(self, decision: PolicyDecision, cap: int) -> PolicyDecision:
        """The refusal of ``decision``'s request because its concurrency cap ``cap`` is full.

        Slots free up as other responses finish, not on a window, so the client
        is told to come back in a second: the status and body of the policy's
        ``rate_limited`` response rendered with ``retry_after`` 1, and
        ``Retry-After: 1``. The ``X-RateLimit-*`` trio describes the cap (``cap``,
        0 remaining, reset in 1 s), or, when the policy reports one window
        (``report: minute``), that window's limit as for any other 429.
        ``check(lease=True)`` answers this itself, before charging anything.
        """
        return self._over_cap(
            decision.category, decision.plan, decision.key_id, decision.client_ip,
            decision.method, decision.path, decision._charges, cap,
        )  # fmt: skip

    def _over_cap(
        self,
        category: str | None,
        plan: str | None,
        key_id: str | None,
        ip: str,
        method: str,
        path: str,
        charges: Sequence[Charge],
        cap: int,
        refused_by: str | None = None,
    ) -> PolicyDecision:
        now = self._now()
        until = now / _NS + 1.0
        refusal = PolicyDecision(
            self.answers, OVER_CAP, False, self._rate_limited_status, "rate_limited", category,
            plan, key_id, ip, method, path, now, cap, 0, until, 1.0, charges,
        )  # fmt: skip
        refusal.detail = "too many concurrent requests"
        refusal.refused_by = refused_by
        return refusal

    def _over_cap_of(self, prepared: _Prepared, index: int) -> PolicyDecision:
        """The refusal of ``prepared`` because its ``index``-th concurrency cap is full."""
        plan = prepared.plan
        return self._over_cap(
            prepared.category.name, plan.name if plan is not None else None, prepared.key_id,
            prepared.ip, prepared.method, prepared.path, prepared.charges,
            prepared.concurrency[index][1], "cap:" + prepared.cap_names[index],
        )  # fmt: skip

    # lockouts and penalty: what to ask the store (the faces do the asking)

    def _failures(
        self, decision: PolicyDecision, status_code: int
    ) -> list[tuple[str, LockoutRule]]:
        """The lockout counters a response status feeds."""
        return [
            (key, lockout.rule)
            for lockout, key in decision.lockouts
            if status_code in lockout.failure_status
        ]

    def _penalty_charge(
        self, prepared: _Prepared, decision: PolicyDecision
    ) -> tuple[str, LockoutRule] | None:
        """A refusal over a limit counts towards the penalty for ignoring 429s."""
        rule = self.compiled.penalty_rule
        if rule is None or decision.allowed:
            return None
        return prepared.blocks[-1][0], rule


class Limiter(_LimiterCore):
    """Decide HTTP requests against a policy, synchronously.

    ``policy`` is a loaded :class:`~ratekeeper.policy.Policy` or a path to a
    policy file; ``store`` defaults to a new :class:`MemoryStore`.
    """

    def check(
        self,
        *,
        method: str = "GET",
        path: str,
        headers: Mapping[str, str] | None = None,
        client_ip: str = "",
        cost: int = 1,
        lease: bool = False,
    ) -> PolicyDecision:
        """Decide one request and charge its limits (all or none).

        ``path`` is the decoded path (ASGI ``scope["path"]``, WSGI
        ``PATH_INFO``): percent-escapes are not decoded here. ``headers`` may
        use any case; ``client_ip`` is the connection's peer, and forwarding
        headers are believed only from the policy's trusted proxies. A
        ``cost`` below 1 raises ``ValueError`` before anything is counted.
        Text that is not valid (a lone surrogate, as servers that decode the
        path with ``surrogateescape`` give it) is escaped, never refused: the
        request is counted and answered like any other (:mod:`ratekeeper.text`).

        With ``lease=True`` the concurrency caps are part of the one decision:
        their leases are taken before the rates are charged, so a request over
        a cap takes nothing from its rates and a request refused by a rate
        holds no slot. An admitted decision then holds ``decision.leases``;
        give them back with :meth:`release` when the response is over.
        """
        prepared = self._prepare(method, path, headers, client_ip, cost)
        if isinstance(prepared, PolicyDecision):
            return prepared
        one = prepared.one
        if one is None:
            return self._check_prepared(prepared, lease)
        known = self._known_refusal(prepared) if self._refused else None
        if known is not None:
            return known
        try:
            result = self.store.apply_one(one[0], one[1], one[2])
        except StoreUnavailableError:
            return self._unavailable(prepared)
        return self._decided(prepared, result[0], [result], self._now())

    def _check_prepared(self, prepared: _Prepared, lease: bool) -> PolicyDecision:
        """The general decision: blocks, remembered refusals, leases, then every charge.

        ``check`` comes here unless ``prepared.one`` lets it go straight to
        ``store.apply_one``: with no block and no lease, only the remembered
        refusals come before the store, and ``check`` looks at them itself.
        """
        lockouts = self.store.lockouts
        taken: list[tuple[str, str]] = []
        try:
            for index, (key, _, _, _) in enumerate(prepared.blocks):
                block = lockouts.status(key)
                if block.blocked:
                    return self._blocked(prepared, block, index)
            known = self._known_refusal(prepared) if self._refused else None
            if known is not None:
                return known
            if lease and prepared.concurrency:
                leases = self.store.leases
                for index, (lease_key, cap, ttl) in enumerate(prepared.concurrency):
                    lease_id = leases.acquire(lease_key, cap, ttl).lease_id
                    if lease_id is None:
                        self._release_taken(taken)
                        return self._over_cap_of(prepared, index)
                    taken.append((lease_key, lease_id))
            admitted, results = self.store.apply(prepared.charges)
            decision = self._decided(prepared, admitted, results, self._now())
            if taken:
                if admitted:
                    decision.leases = tuple(taken)
                else:
                    self._release_taken(taken)
            penalty = self._penalty_charge(prepared, decision)
            if penalty is not None:
                lockouts.record_failure(*penalty)
        except StoreUnavailableError:
            self._release_taken(taken)
            return self._unavailable(prepared)
        return decision

    def release(self, decision: PolicyDecision) -> None:
        """Give back the concurrency leases ``check(lease=True)`` took for ``decision``."""
        if decision.leases:
            taken, decision.leases = decision.leases, ()
            self._release_taken(taken)

    def _release_taken(self, taken: Sequence[tuple[str, str]]) -> None:
        release = self.store.leases.release
        for key, lease_id in taken:
            with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
                release(key, lease_id)

    def record_response(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the response status to the decision's lockouts; returns new blocks."""
        record = self.store.lockouts.record_failure
        try:
            blocks = [record(key, rule) for key, rule in self._failures(decision, status_code)]
        except StoreUnavailableError:
            return []  # failing closed: the next request is refused anyway
        return [block for block in blocks if block.blocked]


class AsyncLimiter(_LimiterCore):
    """The asyncio twin of :class:`Limiter`."""

    async def check(
        self,
        *,
        method: str = "GET",
        path: str,
        headers: Mapping[str, str] | None = None,
        client_ip: str = "",
        cost: int = 1,
        lease: bool = False,
    ) -> PolicyDecision:
        """Decide one request and charge its limits (all or none); see :meth:`Limiter.check`."""
        prepared = self._prepare(method, path, headers, client_ip, cost)
        if isinstance(prepared, PolicyDecision):
            return prepared
        one = prepared.one
        if one is None:
            return await self._check_prepared(prepared, lease)
        known = self._known_refusal(prepared) if self._refused else None
        if known is not None:
            return known
        try:
            if self._one_in_memory:
                result = self.store.apply_one(one[0], one[1], one[2])
            else:
                result = await self.store.apply_one_async(one[0], one[1], one[2])
        except StoreUnavailableError:
            return self._unavailable(prepared)
        return self._decided(prepared, result[0], [result], self._now())

    async def _check_prepared(self, prepared: _Prepared, lease: bool) -> PolicyDecision:
        """The general decision; see :meth:`Limiter._check_prepared`."""
        lockouts = self.store.lockouts
        taken: list[tuple[str, str]] = []
        try:
            for index, (key, _, _, _) in enumerate(prepared.blocks):
                block = await lockouts.status_async(key)
                if block.blocked:
                    return self._blocked(prepared, block, index)
            known = self._known_refusal(prepared) if self._refused else None
            if known is not None:
                return known
            if lease and prepared.concurrency:
                leases = self.store.leases
                for index, (lease_key, cap, ttl) in enumerate(prepared.concurrency):
                    lease_id = (await leases.acquire_async(lease_key, cap, ttl)).lease_id
                    if lease_id is None:
                        await self._release_taken(taken)
                        return self._over_cap_of(prepared, index)
                    taken.append((lease_key, lease_id))
            admitted, results = await self.store.apply_async(prepared.charges)
            decision = self._decided(prepared, admitted, results, self._now())
            if taken:
                if admitted:
                    decision.leases = tuple(taken)
                else:
                    await self._release_taken(taken)
            penalty = self._penalty_charge(prepared, decision)
            if penalty is not None:
                await lockouts.record_failure_async(*penalty)
        except StoreUnavailableError:
            await self._release_taken(taken)
            return self._unavailable(prepared)
        return decision

    async def release(self, decision: PolicyDecision) -> None:
        """Give back the concurrency leases ``check(lease=True)`` took for ``decision``."""
        if decision.leases:
            taken, decision.leases = decision.leases, ()
            await self._release_taken(taken)

    async def _release_taken(self, taken: Sequence[tuple[str, str]]) -> None:
        release = self.store.leases.release_async
        for key, lease_id in taken:
            with contextlib.suppress(StoreUnavailableError):  # else it ends with its ttl
                await release(key, lease_id)

    async def record_response(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the response status to the decision's lockouts; returns new blocks."""
        record = self.store.lockouts.record_failure_async
        try:
            failures = self._failures(decision, status_code)
            blocks = [await record(key, rule) for key, rule in failures]
        except StoreUnavailableError:
            return []  # failing closed: the next request is refused anyway
        return [block for block in blocks if block.blocked]
