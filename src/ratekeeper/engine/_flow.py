"""The decision flow, written once: route, identify, plan, remembered refusals, step, answer.

One request goes: match the route to a category; exempt stops there; identify
the caller (API key, plan, client IP behind trusted proxies); plan its
charges, concurrency leases and the blocks (lockouts, penalty) to check;
answer a counter remembered over its limit without the store; otherwise ask
the store for one atomic :class:`~ratekeeper.stores.base.Step` and turn its
:class:`~ratekeeper.stores.base.StepResult` into the decision, plain data
that its policy's answer renderer writes headers and bodies from.

Nothing here does I/O. :meth:`LimiterCore.flow` is a generator that yields
the step it needs and receives the store's result (httpx's ``auth_flow``
shape); the sync and async limiters (:mod:`ratekeeper.engine._limiter`) drive
it with :func:`~ratekeeper.engine._stepping.run` and ``run_async``. Requests
whose step is their charges alone (no block to check, no lease to take) take
the runners' short way, the store's ``apply_one``/``apply``; both ways answer
alike, which tests/unit/test_fast_paths.py checks.

A caller that already knows its categories and identities (a service given
descriptors, not a method and a path) enters at "plan" with
:meth:`LimiterCore.prepare_items`: several (category, caller) items decided
together in one step.

With ``remember_refusals=True`` (for stores across a network), a counter that
refused one unit is remembered until it could pass: requests that charge it
meanwhile are refused without a round trip (as Envoy's over-limit cache does).
That never admits what the store would refuse; such a refusal reports only the
limit that refused (``statuses`` and the IETF fields list that one).
"""

from __future__ import annotations

import weakref
from collections.abc import Generator, Iterable, Mapping, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

from ..identity import (
    BadRequestError,
    Caller,
    KnownKeys,
    api_key_from,
    lower_headers,
    peer_text,
)
from ..policy import KeyEntry, Policy, load_policy
from ..policy.compiler import (
    CompiledCategory,
    CompiledKey,
    CompiledLockout,
    CompiledNetwork,
    CompiledPlan,
    compile_key,
    compile_policy,
)
from ..policy.router import RequestMemo, RouteMemo
from ..rates import NS_PER_SECOND as _NS
from ..stores.base import (
    BLOCKED,
    REFUSED_BY_CAP,
    Charge,
    ChargeResult,
    LeaseAsk,
    Step,
    StepResult,
    Store,
    StoreUnavailableError,
)
from ..stores.lockouts import Block, LockoutRule
from ..stores.memory import MemoryStore
from ..text import safe_text
from ._charging import Charger
from ._decisions import (
    ADMITTED,
    BAD_REQUEST,
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
from ._decisions import (
    BLOCKED as BLOCKED_OUTCOME,
)
from ._events import BlockEvent, BlockHook, DecisionEvent, DecisionHook, fan_out
from ._lanes import HookedLane, Lane
from ._leases import Lease
from ._overrides import OVERRIDE_NAMES, Override, Overrides
from ._refusals import RefusalCache
from ._slots import check_one_slot
from ._stepping import (
    never_waits,
    one_charge,
    one_charge_async,
    one_slot,
    stepper,
    stepper_async,
)
from ._usage import KeyCounters, find_key, key_counters

__all__ = ["DecisionFlow", "LimiterCore", "Prepared"]

_EMPTY: dict[str, str] = {}
_NO_BLOCKS: tuple[tuple[str, str, int, str], ...] = ()

#: what a flow yields, receives and returns
DecisionFlow = Generator[Step, StepResult, PolicyDecision]
#: a category already known, the caller's path parameters and headers, its API key
_Item = tuple[CompiledCategory, dict[str, str], dict[str, str], str | None]


class Prepared:
    """What the flow knows before it asks the store: a request's plan.

    ``plain`` when the step is the charges alone (no block to check, no cap):
    the runners hand those to the store's ``apply`` directly, and ``one`` is
    the request's only charge when that is all there is (one enforced charge),
    for the store's lean ``apply_one``.
    """

    __slots__ = ("block_keys", "blocks", "cap_names", "category", "charges", "concurrency", "ip",
                 "item_ends", "key_id", "lockouts", "method", "names", "one", "path", "peeks",
                 "penalty", "plain", "plan")  # fmt: skip

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
        #: ``(lease key, cap, ttl seconds)`` of each concurrency cap
        self.concurrency = concurrency
        #: the name of the concurrency limit of each of ``concurrency``
        self.cap_names: tuple[str, ...] = ()
        self.plain = not concurrency
        self.one: Charge | None = None
        #: ``(counter key, response, threshold, what refuses)`` of each block to check
        self.blocks: Sequence[tuple[str, str, int, str]] = _NO_BLOCKS
        #: the counter keys of ``blocks``, as a step asks for them
        self.block_keys: tuple[str, ...] = ()
        #: ``(counter key, rule)`` a refusal over a rate feeds (the penalty)
        self.penalty: tuple[str, LockoutRule] | None = None
        self.lockouts: tuple[tuple[CompiledLockout, str], ...] = ()
        #: the charges (by index) decided but never consumed (``Step.peeks``)
        self.peeks: frozenset[int] = frozenset()
        #: several items joined (``prepare_items``): where each item's charges end
        self.item_ends: tuple[int, ...] = ()


class LimiterCore:
    """The flow of one policy on one store; the limiters are its runners.

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
        hooks: Sequence[DecisionHook] = (),
        block_hooks: Sequence[BlockHook] = (),
    ) -> None:
        if isinstance(policy, str | Path):
            policy = load_policy(policy)
        self.policy = policy
        self.compiled = compiled = compile_policy(policy)
        self.store: Store = store if store is not None else MemoryStore()
        #: every key of one decision must be on one slot (Redis Cluster): a policy
        #: needing two is refused here, not at its first request
        self._one_slot = one_slot(self.store)
        if self._one_slot:
            check_one_slot(policy)
        #: writes the answers of this policy's decisions (every decision carries it)
        self.answers: Answers = answers(compiled)
        # the store's clock: every decision says when it was decided
        self._now = self.store.now_ns
        self._charger = Charger(compiled.identifier)
        # presented keys to their records by SHA-256; known ones remembered as presented
        self._keys: KnownKeys[CompiledKey] = KnownKeys(compiled.keys)
        self._known_keys = self._keys.known
        #: every known key by hash: the policy's, then with ``use_keys``'s (``key_counters``)
        self._records: Mapping[str, CompiledKey] = compiled.keys
        #: ``id(entry)`` -> (entry, compiled) of the keys given to ``use_keys``
        self._compiled_entries: dict[int, tuple[KeyEntry, CompiledKey]] = {}
        #: limiters deciding for this one (``share_keys``): told of every ``use_keys``
        self._sharers: weakref.WeakSet[LimiterCore] = weakref.WeakSet()
        self._rate_limited_status = compiled.bodies["rate_limited"].status
        self._needs_blocks = not compiled.simple
        # (method, path) as requested -> (METHOD, normalized path, match)
        self._routes = RouteMemo(compiled.router)
        self._routed = self._routes.answers
        self._categories = {category.name: category for category in compiled.categories}
        #: ``check_items(overrides=...)``: an item's rate in place of its category's
        self._overrides = Overrides(policy.name)
        # counters known to be over their limit, and until when
        self._refusals = RefusalCache(self.store)
        self._refused = self._refusals.refused
        self._remember = remember_refusals
        self._resolve_ip = compiled.ip_resolver.enabled
        # IPv4 counted whole and no networks: an address without ':' needs no lookup
        self._plain_ipv4 = compiled.client_addresses.plain_ipv4
        #: the store's steps never wait on I/O: the async limiter calls its sync ones,
        #: one coroutine less
        self._never_waits = never_waits(self.store)
        # what performs a step: the store's own ``decide`` (found once)
        self._step = stepper(self.store)
        #: one enforced charge: the store's lean path when it has one (not a duty of stores)
        self._apply_one = one_charge(self.store)
        self._apply_one_async = one_charge_async(self.store)
        self._step_async = stepper_async(self.store)
        # (method, path) as requested -> its lane, or None: see ``lane``
        self._lanes: RequestMemo[Lane | None] = RequestMemo(self._new_lane)
        self._lanes_open = compiled.simple and self._never_waits
        #: told of every decision (``ratekeeper.engine._events``); ``None``: nobody listens
        self.hook = fan_out(hooks)
        if self.hook is not None:
            self._listen(self.hook)
        #: told of every block a response starts (``record_response``); ``None``: nobody
        self.block_hook = fan_out(block_hooks)

    def _listen(self, hook: DecisionHook) -> None:
        """Wrap this limiter's deciding methods so that each decision is told to ``hook``.

        Only a limiter with hooks is wrapped (instance attributes over the
        methods): one without pays nothing. The runners define it.
        """
        raise NotImplementedError

    def event(self, decision: PolicyDecision, cost: int, started: float) -> DecisionEvent:
        """The event of ``decision``, asked at ``cost``, begun at ``started`` (perf_counter)."""
        return DecisionEvent(
            decision.decided_at_ns, decision.outcome, decision.allowed, decision.status_code,
            decision.category, decision.plan, decision.key_id, decision.refused_by, cost,
            perf_counter() - started,
        )  # fmt: skip

    # keys from outside the policy file (the registry of the decision service)

    def use_keys(self, entries: Iterable[KeyEntry]) -> None:
        """Know ``entries`` besides the policy's own keys, in place of those given before.

        The registry's keys, pushed here whenever its snapshot changes: an entry
        wins over a policy key with the same id or the same hash; a key left out
        (revoked) is unknown from the next request on. An entry naming a plan
        the policy lacks is skipped (a policy reload that drops a used plan is
        refused before it gets here). Compiled keys are reused for unchanged
        entries (the same object), so a snapshot of many keys costs its changes.
        """
        policy = self.policy
        own = self.compiled.keys
        records = dict(own)
        by_id = {record.id: digest for digest, record in records.items()}
        compiled = self._compiled_entries
        kept: dict[int, tuple[KeyEntry, CompiledKey]] = {}
        for entry in entries:
            if entry.plan not in policy.plans:
                continue
            found = compiled.get(id(entry))
            record = found[1] if found is not None and found[0] is entry else None
            if record is None:
                record = compile_key(policy, entry)
            kept[id(entry)] = (entry, record)
            shadowed = by_id.pop(entry.id, None)
            if shadowed is not None and records.get(shadowed) is own[shadowed]:
                del records[shadowed]  # the policy's key of that id, not an entry's
            records[entry.sha256] = record
        self._compiled_entries = kept
        keys = KnownKeys(records)
        # the hot path reads both: either pair answers a request correctly
        self._keys, self._known_keys = keys, keys.known
        self._records = records
        if self._sharers:
            given = [entry for entry, _ in kept.values()]
            for sharer in list(self._sharers):
                sharer.use_keys(given)

    def share_keys(self, sharer: LimiterCore) -> None:
        """Let ``sharer`` (a twin deciding for this limiter, on its policy and store: the
        middleware's, built to add hooks) know this limiter's keys, now and after every
        :meth:`use_keys`, so that a key pushed here is known there too."""
        if sharer.policy is not self.policy:
            raise ValueError("a limiter shares its keys with a limiter of the same policy only")
        self._sharers.add(sharer)
        if self._compiled_entries:
            sharer.use_keys([entry for entry, _ in self._compiled_entries.values()])

    # one key's counters (the admin API's usage and reset: ratekeeper.engine._usage)

    def key_counters(self, key_id: str) -> KeyCounters | None:
        """The counters the key ``key_id`` charges, whatever the request; ``None``: no such key."""
        record = find_key(self._records, key_id)
        if record is None:
            return None
        plan = self.compiled.plans[record.plan]
        return key_counters(self._charger, self.compiled.categories, record, plan)

    # lanes: a route's requests decided by client IP alone (see ratekeeper.engine._lanes)

    def lane(self, method: str, path: str) -> Lane | None:
        """The lane of requests for ``method`` and ``path``, or ``None`` for the general path.

        A lane answers exactly as ``check`` (``lease=True``, cost 1) would
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
        settings: dict[str, Any] = {
            "apply_one": self._apply_one, "raw_headers": write,
            "resolve_ip": compiled.ip_resolver.enabled, "addresses": compiled.client_addresses,
            "decide": self._lane_decision,
        }  # fmt: skip
        if self.hook is not None:
            return HookedLane(
                category, charge_plan.names, head, spec, units, method, path,
                hook=self.hook, now=self._now, refused_status=self._rate_limited_status,
                **settings,
            )  # fmt: skip
        return Lane(category, charge_plan.names, head, spec, units, method, path, **settings)

    def _lane_decision(self, lane: Lane, ip: str, result: ChargeResult) -> PolicyDecision:
        prepared = Prepared(
            lane.category, None, None, ip, lane.method, lane.path,
            ((lane.spec, lane.key(ip), lane.units, False),), lane.names, (),
        )  # fmt: skip
        return self._decided(prepared, result[0], [result], self._now())

    def client_ip(self, peer: str, lowered: dict[str, str]) -> str:
        """The client IP of a request from ``peer``, believing only trusted proxies.

        ``lowered``: the request headers the policy reads, by lower-case name
        (:meth:`ratekeeper.identity.ClientIpResolver.client_ip`).
        """
        return self.compiled.ip_resolver.client_ip(peer, lowered)

    # route, identify, plan: all but the store

    def prepare(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        client_ip: str,
        cost: int,
        item: _Item | None = None,
        override: Charge | None = None,
    ) -> Prepared | PolicyDecision:
        """Route, identify and plan the charges of one request: all but the store.

        A decision when there is nothing to ask the store: exempt, 401, 400.
        ``item``: the category already known, with the caller's path
        parameters, headers and API key (:meth:`prepare_items`): no route, no
        proxies to walk back, ``client_ip`` is the client's. ``override``:
        the one charge in place of the category's rates (``_overrides``).
        """
        if cost.__class__ is not int or cost < 1:
            raise ValueError(f"cost must be a positive integer, got {cost!r}")
        compiled = self.compiled
        presented: str | None = None
        if item is None:
            routed = self._routed.get((method, path))  # the route memo, read without a call
            if routed is None:
                routed = self._routes.fill(method, path)
            method, path, found = routed
            if found is None:
                return self._exempt(None, client_ip, method, path)
            category, params = found
            if category.exempt:
                return self._exempt(category.name, client_ip, method, path)
            wanted = compiled.wanted_headers
            lowered = lower_headers(headers, wanted) if headers and wanted else _EMPTY
            # ``compiled.ip_resolver.client_ip(client_ip, lowered)``, inline: every request
            if not client_ip.isascii():
                client_ip = safe_text(client_ip)
            if self._resolve_ip:
                client_ip = compiled.ip_resolver.resolve(client_ip, lowered)
        else:
            category, params, lowered, presented = item
        ip = client_ip
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
            raw = presented or api_key_from(lowered, compiled.api_key_headers, compiled.bearer)
            if raw is not None:
                record = self._known_keys.get(raw) or self._keys.find(raw)
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
        names = charge_plan.names
        try:
            # the two commonest plans, without a call: every key fixed, or one rate by IP
            if override is not None:  # its rates are not charged, so their keys are not needed
                charges: Sequence[Charge] = (override,)
                names = OVERRIDE_NAMES
            elif cost == 1 and charge_plan.fixed is not None:
                charges = charge_plan.fixed
            elif cost == 1 and charge_plan.by_ip is not None:
                head, spec, units, shadow = charge_plan.by_ip
                charges = ((spec, head + counted + "}", units, shadow),)
            else:
                charges = charger.charges(charge_plan, record, plan, counted, lowered, params, cost)
            leases = (
                charger.leases(charge_plan, record, plan, counted, lowered, params)
                if charge_plan.leases
                else ()
            )
            prepared = Prepared(
                category, plan, record.id if record is not None else None, ip, method, path,
                charges, names, leases,
            )  # fmt: skip
            if leases:
                prepared.cap_names = charge_plan.cap_names
            if self._needs_blocks:
                self._plan_blocks(prepared, record, plan, counted, lowered, params)
            if prepared.plain and len(charges) == 1 and not charges[0][3]:
                prepared.one = charges[0]
        except BadRequestError as error:
            decision = self._refuse(
                BAD_REQUEST, category.name, plan.name if plan else None, ip, method, path
            )
            decision.detail = str(error)
            return decision
        return prepared

    def prepare_items(
        self,
        items: Sequence[tuple[str | None, Caller]],
        cost: int,
        costs: Sequence[int] | None = None,
        overrides: Sequence[Override] | None = None,
    ) -> Prepared | PolicyDecision:
        """Plan several (category, caller) items as one decision: the flow entered at "plan".

        For a caller that already knows who is calling and what for (a
        service given descriptors rather than a method and a path). Each
        item's caller is identified as ``check`` identifies a request's (API
        key and plan, counted client address, networks) and its category's
        charges, caps, lockouts and the penalty are planned; all of them are
        decided in one step, all or nothing. Exempt items (an exempt category
        or network) add nothing. The first refusal before the store (401,
        400) answers for all. The decision reports the first item's category
        and plan. ``ValueError`` for an unknown category or no items.

        ``costs``, one per item, in place of ``cost``: an item of cost 0 is a
        peek inside the step (its limits are checked at the units one request
        charges, and refuse the whole decision when they would not pass, but
        are never consumed), never a hit of nothing. The decision's
        ``item_ends`` say where each item's limits end in its ``statuses``.

        ``overrides``, one per item, ``None`` or ``(rate, counter)``: such an
        item's category's rate limits are not charged; one fixed-window charge
        of ``rate`` (its cost, or a peek) counted under ``counter`` is
        (:mod:`ratekeeper.engine._overrides`). All else of the item stays:
        identity, plan, 401/400, caps, lockouts, the penalty; an exempt
        category or network still charges nothing. An item with an override
        may have no category (``None``): it is that charge alone, no identity.
        The decision reports the first categorised item that is charged
        (category, plan, key), else the category of the first item naming
        one, else the policy's first category.
        """
        if cost.__class__ is not int or cost < 1:
            raise ValueError(f"cost must be a positive integer, got {cost!r}")
        if not items:
            raise ValueError("no items to decide")
        if costs is not None:
            if len(costs) != len(items):
                raise ValueError(f"{len(costs)} costs for {len(items)} items")
            for each in costs:
                if each.__class__ is not int or each < 0:
                    raise ValueError(f"an item's cost must be a whole number >= 0, got {each!r}")
        units_of = [cost] * len(items) if costs is None else costs
        replaced = None if overrides is None else self._overrides.charges(overrides, units_of)
        planned: list[Prepared] = []
        peeked: list[bool] = []
        ends: list[int] = []  # per item, in planned charges counted so far
        head: int | None = None  # the first planned item with a category of its own
        first: PolicyDecision | None = None
        for index, (name, caller) in enumerate(items):
            override = None if replaced is None else replaced[index]
            ip = peer_text(caller.client_ip)
            units = units_of[index]
            if name is None:
                if override is None:
                    raise ValueError("an item without a category needs an override")
                found: Prepared | PolicyDecision = self._override_alone(override, ip, items)
            else:
                category = self._categories.get(name)
                if category is None:
                    raise ValueError(f"unknown category {name!r}")
                if category.exempt:
                    found = self._exempt(category.name, ip, "", "")
                else:
                    item = (
                        category, dict(caller.params), self._caller_headers(caller), caller.api_key
                    )  # fmt: skip
                    found = self.prepare("", "", None, ip, units or 1, item, override)
            if isinstance(found, Prepared):
                if head is None and name is not None:
                    head = len(planned)
                planned.append(found)
                peeked.append(units == 0)
                ends.append(len(found.charges) + (ends[-1] if ends else 0))
                continue
            ends.append(ends[-1] if ends else 0)
            if not found.exempt:
                return found  # 401 or 400: nothing is decided
            elif first is None:
                first = found
        if not planned:
            assert first is not None
            return first
        joined = _joined(planned, peeked, head or 0)
        joined.item_ends = tuple(ends)
        if self._one_slot:
            tags = {key[key.index("{") :] for key in _keys_of(joined)}
            if len(tags) > 1:
                raise ValueError(
                    f"these items count one decision by {len(tags)} identities "
                    f"({', '.join(sorted(tags))}); this store keeps one decision on one slot "
                    "(Redis Cluster): decide them one by one"
                )
        return joined

    def _override_alone(
        self, charge: Charge, ip: str, items: Sequence[tuple[str | None, Caller]]
    ) -> Prepared:
        """The plan of an item with no category: its override's charge, nothing else.

        It needs a category to be reported by (headers, bodies, events): the
        first item's that names one, else the policy's first.
        """
        named = next((name for name, _ in items if name is not None), None)
        category = self._categories.get(named) if named is not None else None
        if category is None:  # no item names one (an unknown name is refused by the caller)
            category = self.compiled.categories[0]
        prepared = Prepared(category, None, None, ip, "", "", (charge,), OVERRIDE_NAMES, ())
        prepared.one = charge
        return prepared

    def _caller_headers(self, caller: Caller) -> dict[str, str]:
        """What the request headers would say of ``caller``: node and user included."""
        compiled = self.compiled
        lowered = lower_headers(caller.headers, compiled.wanted_headers) if caller.headers else {}
        if caller.node is not None:
            lowered[compiled.node_header] = caller.node
        if caller.user is not None and compiled.user_header is not None:
            lowered[compiled.user_header] = caller.user
        return lowered

    def _keyless_plan(self, network: CompiledNetwork | None) -> CompiledPlan | None:
        """The plan of a caller without a (known) key: its network's, else the anonymous plan."""
        if network is not None and network.plan is not None:
            return network.plan
        return self.compiled.anonymous_plan

    def _plan_blocks(
        self,
        prepared: Prepared,
        record: CompiledKey | None,
        plan: CompiledPlan | None,
        counted: str,
        headers: dict[str, str],
        params: dict[str, str],
    ) -> None:
        """The lockout and penalty counters of ``prepared``; ``counted``: its counted IP."""
        compiled = self.compiled
        identity = compiled.identifier.tag
        lockouts = prepared.category.lockouts
        if compiled.has_route_lockouts and prepared.path:
            found = compiled.lockout_router.match(prepared.method, prepared.path)
            if found is not None and found[0] not in lockouts:
                lockouts = (*lockouts, found[0])
        blocks: list[tuple[str, str, int, str]] = []
        keys: list[str] = []
        if lockouts:
            pairs: list[tuple[CompiledLockout, str]] = []
            for lockout in lockouts:
                key = lockout.prefix + identity(lockout.by, record, plan, counted, headers, params)
                pairs.append((lockout, key))
                blocks.append((key, lockout.response, lockout.rule.threshold, lockout.refuses))
                keys.append(key)
            prepared.lockouts = tuple(pairs)
        rule = compiled.penalty_rule
        if rule is not None:
            penalty = self.policy.penalty
            assert penalty is not None
            key = compiled.penalty_prefix + identity(
                penalty.by, record, plan, counted, headers, params
            )
            blocks.append((key, penalty.response, penalty.rejections, "penalty"))
            keys.append(key)
            prepared.penalty = (key, rule)
        if blocks:
            prepared.blocks = blocks
            prepared.block_keys = tuple(keys)
            prepared.plain = False

    # the flow: remembered refusals, one store step, the decision

    def flow(self, prepared: Prepared, lease: bool) -> DecisionFlow:
        """The decision of ``prepared``: yields the store step it needs, returns the decision.

        With ``lease=True`` the concurrency caps are part of the one step:
        their leases are taken before the rates are charged. A client blocked
        by a lockout or the penalty is refused before anything else, even a
        counter remembered over its limit (a step of the blocks alone).
        """
        if self._refused:
            found = self._refusals.known(prepared.charges)
            if found is not None:
                if prepared.block_keys:
                    try:
                        result = yield Step((), blocks=prepared.block_keys)
                    except StoreUnavailableError:
                        return self._unavailable(prepared)
                    if result.outcome == BLOCKED:
                        return self._blocked(prepared, result)
                return self._known(prepared, found)
        asks: tuple[LeaseAsk, ...] = ()
        if lease and prepared.concurrency:
            asks = tuple(
                (key, cap, round(ttl * _NS)) for key, cap, ttl in prepared.concurrency
            )  # fmt: skip
        try:
            result = yield Step(
                prepared.charges, prepared.block_keys, asks, prepared.penalty, peeks=prepared.peeks
            )
        except StoreUnavailableError:
            return self._unavailable(prepared)
        return self.answer(prepared, result)

    def answer(self, prepared: Prepared, result: StepResult) -> PolicyDecision:
        """The decision of ``prepared`` once the store decided its step."""
        outcome = result.outcome
        if outcome == BLOCKED:
            return self._blocked(prepared, result)
        if outcome == REFUSED_BY_CAP:
            return self._over_cap_of(prepared, result.index, result.now_ns)
        decision = self._decided(prepared, result.admitted, result.results, result.now_ns)
        if result.leases:
            decision.lease = Lease(result.leases)
        elif result.block is not None and self.block_hook is not None:
            # a refusal over a rate that took the penalty to its threshold: the block it
            # started (one in force would have answered BLOCKED: its key is among the blocks)
            self.tell_block(
                result.block, lockout="penalty", category=decision.category,
                key_id=decision.key_id,
            )  # fmt: skip
        return decision

    def _known(self, prepared: Prepared, found: tuple[int, int, int]) -> PolicyDecision:
        """The refusal of a request charging a counter known to be over its limit.

        Answered without asking the store, reporting only the limit that
        refused (:mod:`ratekeeper.engine._refusals`).
        """
        index, until, now = found
        known = Prepared(
            prepared.category, prepared.plan, prepared.key_id, prepared.ip,
            prepared.method, prepared.path, (prepared.charges[index],),
            (prepared.names[index],), prepared.concurrency,
        )  # fmt: skip
        known.lockouts = prepared.lockouts
        if prepared.item_ends:  # only the refused charge is reported: it ends its item
            known.item_ends = tuple(0 if end <= index else 1 for end in prepared.item_ends)
        return self._decided(known, False, [(False, 0, until, until - now)], now)

    def known_refusal(self, prepared: Prepared) -> PolicyDecision | None:
        """The refusal of a plain request known without the store, else ``None``."""
        found = self._refusals.known(prepared.charges)
        return None if found is None else self._known(prepared, found)

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

    def _blocked(self, prepared: Prepared, result: StepResult) -> PolicyDecision:
        """A blocked client's refusal: the block's threshold is the limit it went over."""
        _, response, threshold, refused_by = prepared.blocks[result.index]
        block = result.block
        assert block is not None
        now = result.now_ns
        plan = prepared.plan
        decision = PolicyDecision(
            self.answers, BLOCKED_OUTCOME, False, self.compiled.bodies[response].status,
            response, prepared.category.name, plan.name if plan is not None else None,
            prepared.key_id, prepared.ip, prepared.method, prepared.path, now, threshold, 0,
            block.until, (block.until_ns - now) / _NS,
        )  # fmt: skip
        decision.refused_by = refused_by
        return decision

    def _unavailable(self, prepared: Prepared) -> PolicyDecision:
        """The answer when the store cannot decide and fails closed (503, retry in 1 s)."""
        plan = prepared.plan
        now = self._now()
        return PolicyDecision(
            self.answers, UNAVAILABLE, False, self.compiled.bodies[UNAVAILABLE].status,
            UNAVAILABLE, prepared.category.name, plan.name if plan is not None else None,
            prepared.key_id, prepared.ip, prepared.method, prepared.path, now,
            reset_at=now / _NS + 1.0, retry_after=1.0,
        )  # fmt: skip

    def _decided(
        self, prepared: Prepared, admitted: bool, results: list[ChargeResult], now: int
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
            retry_after, charges, results, prepared.names, prepared.concurrency,
            prepared.lockouts,
        )  # fmt: skip
        if prepared.item_ends:
            decision.item_ends = prepared.item_ends
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
            decision.method, decision.path, decision.charges, cap, None, self._now(),
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
        refused_by: str | None,
        now: int,
    ) -> PolicyDecision:
        until = now / _NS + 1.0
        refusal = PolicyDecision(
            self.answers, OVER_CAP, False, self._rate_limited_status, "rate_limited", category,
            plan, key_id, ip, method, path, now, cap, 0, until, 1.0, charges,
        )  # fmt: skip
        refusal.detail = "too many concurrent requests"
        refusal.refused_by = refused_by
        return refusal

    def _over_cap_of(self, prepared: Prepared, index: int, now: int) -> PolicyDecision:
        """The refusal of ``prepared`` because its ``index``-th concurrency cap is full."""
        plan = prepared.plan
        return self._over_cap(
            prepared.category.name, plan.name if plan is not None else None, prepared.key_id,
            prepared.ip, prepared.method, prepared.path, prepared.charges,
            prepared.concurrency[index][1], "cap:" + prepared.cap_names[index], now,
        )  # fmt: skip

    # after the response: what to ask the store (the runners do the asking)

    def tell_block(
        self, block: Block, *, lockout: str, category: str | None, key_id: str | None
    ) -> None:
        """Tell the block hooks of ``block`` if a failure just started it.

        A store answers a failure with the block it started (its
        ``failures`` at the threshold) or, while one is in force, with that
        one (no failure counted: ``failures`` 0); only the first is told.
        ``/v1/report`` feeds lockouts itself and calls this too.
        """
        hook = self.block_hook
        if hook is not None and block.blocked and block.failures > 0:
            hook(
                BlockEvent(
                    self._now(), block.key, lockout, block.until_ns, block.streak, category, key_id
                )
            )

    def tell_blocks(self, decision: PolicyDecision, blocks: list[Block]) -> None:
        """:meth:`tell_block` for the blocks ``record_response`` got for ``decision``."""
        names = {key: lockout.name for lockout, key in decision.lockouts}
        for block in blocks:
            self.tell_block(
                block,
                lockout=names.get(block.key, ""),
                category=decision.category,
                key_id=decision.key_id,
            )

    def failures(self, decision: PolicyDecision, status_code: int) -> list[tuple[str, LockoutRule]]:
        """The lockout counters a response status feeds."""
        return [
            (key, lockout.rule)
            for lockout, key in decision.lockouts
            if status_code in lockout.failure_status
        ]


def _keys_of(prepared: Prepared) -> list[str]:
    """Every store key one decision of ``prepared`` reads or writes."""
    keys = [key for _, key, _, _ in prepared.charges]
    keys.extend(key for key, _, _ in prepared.concurrency)
    keys.extend(prepared.block_keys)
    return keys


def _joined(planned: list[Prepared], peeked: list[bool], head_index: int = 0) -> Prepared:
    """Several items' plans as one: every charge, cap and block, decided together.

    The charges of the items ``peeked`` (in step with ``planned``) are peeks;
    the decision reports the category, plan and key of ``planned[head_index]``.
    """
    if len(planned) == 1 and not peeked[0]:
        return planned[0]
    head = planned[head_index]
    joined = Prepared(
        head.category, head.plan, head.key_id, head.ip, head.method, head.path,
        [charge for item in planned for charge in item.charges],
        [name for item in planned for name in item.names],
        tuple(lease for item in planned for lease in item.concurrency),
    )  # fmt: skip
    joined.cap_names = tuple(name for item in planned for name in item.cap_names)
    joined.blocks = [block for item in planned for block in item.blocks]
    joined.block_keys = tuple(block[0] for block in joined.blocks)
    joined.lockouts = tuple(pair for item in planned for pair in item.lockouts)
    joined.penalty = next((item.penalty for item in planned if item.penalty is not None), None)
    peeks: list[int] = []
    start = 0
    for item, peek in zip(planned, peeked, strict=True):
        if peek:
            peeks.extend(range(start, start + len(item.charges)))
        start += len(item.charges)
    joined.peeks = frozenset(peeks)
    joined.plain = all(item.plain for item in planned) and not peeks
    if joined.plain and len(joined.charges) == 1 and not joined.charges[0][3]:
        joined.one = joined.charges[0]
    return joined
