"""Counters in Redis or Valkey: standalone, Sentinel or Cluster; sync and asyncio.

One decision is one ``EVALSHA`` of the decide script (``lua/decide.lua``),
whatever the number of rates: the script reads the server's clock, evaluates
every charge, and writes all of them or none. A whole policy decision
(``decide``: blocks, concurrency caps, rates, penalty) is one call of the same
script too. redis-py's script objects load the script again when the server
answers ``NOSCRIPT`` (after a restart or ``SCRIPT FLUSH``). asyncio decisions
that arrive in the same turn of the event loop share one call of the script,
and so do threads that arrive while a call is in flight (``batching.py``).

Key layout: ``rk:<letter><window_ms>[:<limit>:<capacity>]:<key>``, the letter
naming the algorithm (``f``, ``w``, ``l``, ``t``; the token bucket's state
depends on its limit): short, because Redis keeps every key name in full. A
key that carries a hash tag (``scanner:api:{demo-pro}``, as the policy limiter
builds them) keeps it; any other key is wrapped whole (``{user:1}``), so all
counters of one decision share a Cluster slot. Every key has a TTL. Key names
are UTF-8; a ``str`` that is not valid text (a lone surrogate) gets bytes of
its own instead of an encoding error (``keys.encoded``), so every
distinct ``str`` is a counter of its own, as in the memory store.

Time inside Redis is the server's ``TIME`` (seconds and microseconds). The
sliding log counts in microseconds (a unit is stamped at the end of the
microsecond ``TIME`` reports, so it never leaves the log early); the other
algorithms count in whole milliseconds, their answers rounded up, never down.
Lua numbers are doubles, exact below 2**53: the bounds every rate is checked
against (algorithms/bounds.py) keep the script exact, the products that may
pass 2**53 being computed in parts. The memory store is exact to the
nanosecond; both pass the same contract vectors, which are written in
milliseconds (microseconds for the sliding log).

When Redis is unreachable or slower than ``timeout``, ``on_error`` decides:
``"open"`` admits (the default: a rate limiter should not take an API down),
``"closed"`` refuses (:class:`StoreUnavailableError`, which the limiters turn
into a 503-style answer), ``"local"`` falls back to an in-process memory store
where each of ``instances`` processes takes ``1/instances`` of every limit (so
together they still hold roughly the limit); its counts are dropped when Redis
answers again. Lockouts and leases fail the same way (``"local"`` keeps them
in memory meanwhile). One warning is logged per incident and one when Redis
answers again; ``errors`` counts failed calls. No Redis error reaches the caller.

URL forms (:meth:`RedisStore.from_url`)::

    redis://[:password@]host:6379/0            standalone
    rediss://host:6380/0                       standalone over TLS
    unix:///run/redis.sock?db=0                standalone over a socket
    redis+cluster://host:7000[,host2:7001]     Redis Cluster (seed nodes)
    redis+sentinel://host:26379[,host2:26379]/mymaster[/db]   Sentinel
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from ...algorithms import MAX_WINDOW_NS
from ...rates import NS_PER_MS, NS_PER_SECOND, NS_PER_US
from ..base import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    Charge,
    ChargeResult,
    LimitSpec,
    Step,
    StepResult,
    StoreUnavailableError,
)
from ..leases import check_lease
from ..lockouts import Block, LockoutRule
from ..memory import MemoryStore
from .batching import DecisionCall, ScriptBatcher, ThreadBatcher
from .keys import RedisKey, encoded, hash_tag, lease_name, lockout_names, name_slot, tagged
from .outage import Outage
from .scripts import script_text
from .tables import RedisLeases, RedisLockouts

__all__ = ["RedisStore"]

OnError = Literal["open", "closed", "local"]

_ASYNC_CONNECTIONS = 64
_POOL_WAIT = 1.0  # seconds an asyncio caller may wait for a free connection
_ALGORITHM_CODES = {"fixed_window": 1, "sliding_window": 2, "sliding_log": 3, "token_bucket": 4}
_ALGORITHM_LETTERS = {
    "fixed_window": "f",
    "sliding_window": "w",
    "sliding_log": "l",
    "token_bucket": "t",
}
_MAX_LAYOUTS = 4096  # specs whose key prefix is remembered (a policy has a handful)
_MAX_RULES = 256  # lockout rules whose script numbers are remembered


def _script_text() -> str:
    """The decision script's text (read here, once per store: tests patch it)."""
    return script_text("decide")


class RedisStore:
    """Counters in Redis, behind the same :class:`~ratekeeper.stores.Store` protocol.

    Wrap existing redis-py clients (``client`` sync, ``async_client`` asyncio;
    either may be ``None`` if that face is not used), or use :meth:`from_url`.
    """

    #: every call waits on the network: the async faces are coroutines of their own
    never_waits = False

    def __init__(
        self,
        client: Any = None,
        *,
        async_client: Any = None,
        on_error: OnError = "open",
        prefix: str = "rk:",
        clock: Callable[[], float] | None = None,
        instances: int = 1,
    ) -> None:
        if on_error not in ("open", "closed", "local"):
            raise ValueError(f"on_error must be 'open', 'closed' or 'local', got {on_error!r}")
        if instances < 1:
            raise ValueError(f"instances must be at least 1, got {instances}")
        if client is None and async_client is None:
            raise ValueError("RedisStore needs a client, an async_client, or from_url()")
        self.on_error: OnError = on_error
        self.prefix = prefix
        # tests only: a fake clock (epoch seconds) instead of the server's TIME
        self._clock = clock
        self._client = client
        self._async_client = async_client
        self._async_factory: Any = None
        self._script_text = _script_text()
        self._decide = _sync_decide(client, self._script_text) if client is not None else None
        self._async_decide: DecisionCall | None = None
        self._layout: dict[LimitSpec, tuple[str, str]] = {}
        self._rules: dict[LockoutRule, str] = {}
        #: Redis Cluster: the keys of one step must share a slot (``Store.one_slot``)
        self.one_slot = _is_cluster(client) or _is_cluster(async_client)
        self.outage = Outage(on_error)
        self.generation = 0
        self.instances = instances
        self._local = MemoryStore(clock=clock) if on_error == "local" else None
        self._local_specs: dict[LimitSpec, LimitSpec] = {}
        self.leases = RedisLeases(
            client, self._get_async_client, prefix, self._now_ms_arg, self.outage, self._local
        )
        self.lockouts = RedisLockouts(
            client, self._get_async_client, prefix, self._now_ms_arg, self.outage, self._local
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        on_error: OnError = "open",
        timeout: float = 0.05,
        prefix: str = "rk:",
        clock: Callable[[], float] | None = None,
        instances: int = 1,
        **client_options: Any,
    ) -> RedisStore:
        """A store for ``url`` (forms in the module docstring), ``timeout`` seconds per call."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # a limiter must answer fast when Redis is gone: one immediate retry, no backoff
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        options.update(client_options)
        sync_options = {"retry": Retry(NoBackoff(), 1), **options}
        scheme = urlsplit(url).scheme
        if scheme == "redis+cluster":
            seeds = _hosts(url)
            nodes = [redis.cluster.ClusterNode(host, port) for host, port in seeds]  # type: ignore[no-untyped-call]
            client: Any = redis.cluster.RedisCluster(
                startup_nodes=nodes, retry=Retry(NoBackoff(), 1), **options
            )
            store = cls(client, on_error=on_error, prefix=prefix, clock=clock, instances=instances)
            store._async_factory = lambda: _async_cluster(seeds, options)
            return store
        if scheme == "redis+sentinel":
            seeds, service, db = _sentinel_parts(url)
            sentinel = redis.sentinel.Sentinel(seeds, **options)
            client = sentinel.master_for(service, db=db, **sync_options)
            store = cls(client, on_error=on_error, prefix=prefix, clock=clock, instances=instances)
            store._async_factory = lambda: _async_sentinel(seeds, service, db, options)
            return store
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                f"unsupported Redis URL scheme {scheme!r}: use redis://, rediss://, unix://, "
                "redis+cluster:// or redis+sentinel://"
            )
        client = redis.Redis.from_url(url, **sync_options)
        store = cls(client, on_error=on_error, prefix=prefix, clock=clock, instances=instances)
        store._async_factory = lambda: _async_from_url(url, options)
        return store

    # the Store protocol

    def now_ns(self) -> int:
        if self._clock is not None:
            return round(self._clock() * NS_PER_SECOND)
        return time.time_ns()

    def apply(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        if self._decide is None:
            raise RuntimeError("this RedisStore has no sync client; use the async face")
        keys, numbers = self._decision_args(charges, consume)
        try:
            raw = self._decide(keys, numbers, self._now_us_arg())
        except Exception as error:
            return self._failed(charges, consume, error)
        if self.outage.failing:
            self._recover()
        return _parse(raw, len(charges))

    async def apply_async(
        self, charges: Sequence[Charge], consume: bool = True
    ) -> tuple[bool, list[ChargeResult]]:
        keys, numbers = self._decision_args(charges, consume)
        decide = self._async_decide or self._make_async_decide()
        try:
            raw = await decide(keys, numbers, self._now_us_arg())
        except Exception as error:
            return self._failed(charges, consume, error)
        if self.outage.failing:
            self._recover()
        return _parse(raw, len(charges))

    def apply_one(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        if self._decide is None:
            raise RuntimeError("this RedisStore has no sync client; use the async face")
        slot, values = self._layout.get(spec) or self._lay_out(spec)
        name = encoded(slot + tagged(key))
        try:
            raw = self._decide([name], f"1 1 {values} {cost} 0", self._now_us_arg())
        except Exception as error:
            return self._failed([(spec, key, cost, False)], True, error)[1][0]
        if self.outage.failing:
            self._recover()
        return _parse_one(raw)

    async def apply_one_async(self, spec: LimitSpec, key: str, cost: int) -> ChargeResult:
        slot, values = self._layout.get(spec) or self._lay_out(spec)
        name = encoded(slot + tagged(key))
        decide = self._async_decide or self._make_async_decide()
        try:
            raw = await decide([name], f"1 1 {values} {cost} 0", self._now_us_arg())
        except Exception as error:
            return self._failed([(spec, key, cost, False)], True, error)[1][0]
        if self.outage.failing:
            self._recover()
        return _parse_one(raw)

    def decide(self, step: Step) -> StepResult:
        """``step``'s blocks, leases, rates and penalty in one call of the decide script.

        One ``EVALSHA``, whatever the step holds (:class:`~ratekeeper.stores.Step`),
        batched with other threads' decisions as ``apply``'s are.
        """
        if self._decide is None:
            raise RuntimeError("this RedisStore has no sync client; use the async face")
        keys, numbers, words, taken = self._step_args(step)
        try:
            raw = self._decide(keys, numbers, self._now_us_arg(), words, 5 + 4 * len(step.charges))
        except Exception as error:
            return self._step_failed(step, taken, error)
        if self.outage.failing:
            self._recover()
        return _parse_step(raw, step, taken)

    async def decide_async(self, step: Step) -> StepResult:
        """``decide`` for asyncio callers (batched with the decisions of the same turn)."""
        keys, numbers, words, taken = self._step_args(step)
        decide = self._async_decide or self._make_async_decide()
        try:
            raw = await decide(keys, numbers, self._now_us_arg(), words, 5 + 4 * len(step.charges))
        except Exception as error:
            return self._step_failed(step, taken, error)
        if self.outage.failing:
            self._recover()
        return _parse_step(raw, step, taken)

    def slot_of(self, key: str) -> int:
        """The Redis Cluster slot of every Redis key this store names after ``key``.

        Its counters, its lease set and its lockout log and block all share it
        (``keys.key_slot``, the prefix included: a prefix with a ``{...}`` of
        its own puts every key on its slot). On a Cluster (``one_slot``) the
        keys of one step must share a slot.
        """
        return name_slot(self.prefix + tagged(key))

    def reset(self, counters: Sequence[tuple[LimitSpec, str]]) -> int:
        """Delete the counters ``(spec, key)`` (one ``DEL``; per slot on a Cluster).

        For the admin API's reset of one key's counters: exactly those Redis
        keys go (leases and lockouts stay); how many there were. Unlike a
        decision, a reset that cannot reach Redis is not answered by
        ``on_error``: it raises :class:`StoreUnavailableError`, so the operator
        hears it did not happen. The local fallback's counters go too.
        """
        if self._client is None:
            raise RuntimeError("this RedisStore has no sync client; use reset_async")
        names = self._counter_names(counters)
        try:
            return int(self._client.delete(*names)) if names else 0
        except Exception as error:
            raise StoreUnavailableError(f"could not reset counters: {error}") from error

    async def reset_async(self, counters: Sequence[tuple[LimitSpec, str]]) -> int:
        """``reset`` on the asyncio client."""
        names = self._counter_names(counters)
        try:
            return int(await self._get_async_client().delete(*names)) if names else 0
        except Exception as error:
            raise StoreUnavailableError(f"could not reset counters: {error}") from error

    def _counter_names(self, counters: Sequence[tuple[LimitSpec, str]]) -> list[RedisKey]:
        """The Redis names of ``counters``, as decisions name them; their local copies go."""
        if self._local is not None:  # its tables are the same slots
            self._local.reset(counters)
        layout = self._layout
        return [
            encoded((layout.get(spec) or self._lay_out(spec))[0] + tagged(key))
            for spec, key in counters
        ]

    # helpers

    def _now_ms_arg(self) -> str:
        """The time the lease and lockout scripts use: ``""`` for the server's, else the fake's.

        Whole ms of the fake's microseconds, as the decide script's steps see them.
        """
        return "" if self._clock is None else str(round(self._clock() * 1_000_000) // 1000)

    def _now_us_arg(self) -> str:
        """The time the decision script uses, in microseconds: ``""`` for the server's own."""
        return "" if self._clock is None else str(round(self._clock() * 1_000_000))

    def _lay_out(self, spec: LimitSpec) -> tuple[str, str]:
        """A spec's key prefix and script numbers, computed once per spec (module doc)."""
        algorithm = spec.algorithm
        window_ms = _ms(spec.window_ns)
        slot = f"{self.prefix}{_ALGORITHM_LETTERS[algorithm.name]}{window_ms}:"
        if algorithm.state_depends_on_limit:
            slot = f"{slot}{spec.limit}:{spec.capacity}:"
        code = _ALGORITHM_CODES[algorithm.name]
        layout = (slot, f"{code} {spec.limit} {window_ms} {spec.capacity}")
        if len(self._layout) < _MAX_LAYOUTS:
            self._layout[spec] = layout
        return layout

    def _decision_args(
        self, charges: Sequence[Charge], consume: bool
    ) -> tuple[list[RedisKey], str]:
        """One decision's keys and its numbers for the script (``ARGV[2]`` of decide.lua)."""
        keys: list[RedisKey] = []
        numbers = [f"{1 if consume else 0} {len(charges)}"]
        self._add_charges(charges, keys, numbers)
        return keys, " ".join(numbers)

    def _add_charges(
        self,
        charges: Sequence[Charge],
        keys: list[RedisKey],
        numbers: list[str],
        peeks: frozenset[int] = frozenset(),
    ) -> None:
        """Append each charge's counter name to ``keys`` and its numbers to ``numbers``.

        The last number of a charge: 1 when it is shadow, plus 2 when it is peeked
        (``Step.peeks``: decided, never consumed).
        """
        layout = self._layout
        for index, (spec, key, cost, shadow) in enumerate(charges):
            slot, values = layout.get(spec) or self._lay_out(spec)
            keys.append(encoded(slot + tagged(key)))
            flags = (1 if shadow else 0) + (2 if peeks and index in peeks else 0)
            numbers.append(f"{values} {cost} {flags}")

    def _step_args(
        self, step: Step
    ) -> tuple[list[RedisKey], str, list[str], list[tuple[str, str]]]:
        """A step's keys, numbers and words for the decide script (its header), and the
        leases it takes when admitted (``(lease key, lease id)``, ids made here)."""
        charges, blocks, asks, penalty = step.charges, step.blocks, step.leases, step.penalty
        consume = step.consume
        keys: list[RedisKey] = []
        numbers = [
            f"{3 if consume else 2} {len(charges)} {len(blocks)} {len(asks)} "
            f"{0 if penalty is None else 1}"
        ]
        self._add_charges(charges, keys, numbers, step.peeks)
        prefix = self.prefix
        for key in blocks:
            keys += lockout_names(prefix, key)
        words: list[str] = []
        taken: list[tuple[str, str]] = []
        for key, cap, ttl_ns in asks:
            check_lease(cap, ttl_ns)
            keys.append(lease_name(prefix, key))
            numbers.append(f"{cap} {max(1, (ttl_ns + NS_PER_MS // 2) // NS_PER_MS)}")
            if consume:
                lease_id = secrets.token_hex(8)
                words.append(lease_id)
                taken.append((key, lease_id))
        if penalty is not None:
            key, rule = penalty
            keys += lockout_names(prefix, key)
            numbers.append(self._rules.get(rule) or self._rule_numbers(rule))
            words.append(repr(rule.escalation))
        if self.one_slot:
            _check_one_slot(keys, step)
        return keys, " ".join(numbers), words, taken

    def _rule_numbers(self, rule: LockoutRule) -> str:
        """A lockout rule's numbers for the decide script (its escalation goes as a word)."""
        numbers = " ".join(
            str(value)
            for value in (
                rule.threshold,
                round(rule.window * 1000),
                round(rule.block * 1000),
                0 if rule.max_block is None else round(rule.max_block * 1000),
                round(rule.streak_memory * 1000),
            )
        )
        if len(self._rules) < _MAX_RULES:
            self._rules[rule] = numbers
        return numbers

    def _get_async_client(self) -> Any:
        if self._async_client is None:
            if self._async_factory is None:
                raise RuntimeError("this RedisStore has no asyncio client; pass async_client")
            self._async_client = self._async_factory()
        return self._async_client

    def _make_async_decide(self) -> DecisionCall:
        """How asyncio decisions reach Redis: batched, but on Cluster.

        A Cluster routes each call to its slot's node, and the decisions of a
        batch rarely share one, so there each decision is its own call.
        """
        client = self._get_async_client()
        script = client.register_script(self._script_text)
        if _is_cluster(client):

            async def alone(
                keys: list[RedisKey],
                numbers: str,
                now: str,
                words: Sequence[str] = (),
                size: int = 0,
            ) -> Any:
                return await script(keys=keys, args=[now, numbers, *words])

            self._async_decide = alone
        else:
            self._async_decide = ScriptBatcher(script)
        return self._async_decide

    @property
    def degraded(self) -> bool:
        """True while Redis fails and answers come from ``on_error``."""
        return self.outage.failing

    @property
    def errors(self) -> int:
        """Failed calls to Redis since the store was made."""
        return self.outage.errors

    def _failed(
        self, charges: Sequence[Charge], consume: bool, error: Exception
    ) -> tuple[bool, list[ChargeResult]]:
        self.outage.failed(error)  # raises StoreUnavailableError when failing closed
        if self._local is not None:
            return self._local.apply([self._local_charge(charge) for charge in charges], consume)
        now = time.time_ns()
        return True, [(True, spec.limit, now, 0) for spec, _key, _cost, _shadow in charges]

    def _step_failed(
        self, step: Step, taken: list[tuple[str, str]], error: Exception
    ) -> StepResult:
        """A step when Redis failed: as ``on_error`` says, like each of its parts today.

        ``open``: admitted, its leases granted (counted nowhere), nobody blocked;
        ``closed``: :class:`StoreUnavailableError`; ``local``: the local store
        decides it, its rates at this instance's share.
        """
        self.outage.failed(error)  # raises StoreUnavailableError when failing closed
        if self._local is not None:
            charges = [self._local_charge(charge) for charge in step.charges]
            return self._local.decide(dataclasses.replace(step, charges=charges))
        now = time.time_ns()
        results: list[ChargeResult] = [(True, spec.limit, now, 0) for spec, *_ in step.charges]
        return StepResult(ADMITTED, results, now, leases=tuple(taken))

    def _local_charge(self, charge: Charge) -> Charge:
        """``charge`` against this instance's share of its limit."""
        spec, key, cost, shadow = charge
        local = self._local_specs.get(spec)
        if local is None:
            share = self.instances
            limit = max(1, spec.limit // share)
            # rounding the shares down may slow a bucket's refill past the 365 days
            # the bounds allow (3/day with a burst of 1,095 -> 1/day with 547): hold
            # the share's burst to what refills within them
            refills = limit * MAX_WINDOW_NS // spec.window_ns
            local = self._local_specs[spec] = LimitSpec(
                spec.algorithm,
                limit,
                spec.window_ns,
                max(1, min(spec.capacity // share, refills)),
                spec.slot,
            )
        return local, key, cost, shadow

    def _recover(self) -> None:
        self.outage.recovered()
        if self._local is not None:
            self._local.clear()  # Redis is the truth again
            self.generation += 1  # and refusals remembered from local counts are void

    def ping(self) -> bool:
        """Does Redis answer ``PING``? For health checks: never raises, never counts an outage.

        A failing ping leaves ``degraded`` and ``errors`` as they were: only
        decisions say the store is failing. A store made with an asyncio
        client alone answers ``ping_async`` only.
        """
        if self._client is None:
            raise RuntimeError("this RedisStore has no sync client; use ping_async")
        try:
            return bool(self._client.ping())
        except Exception:  # a health check answers "no", whatever went wrong
            return False

    async def ping_async(self) -> bool:
        """``ping`` on the asyncio client (made on first use, as decisions make it)."""
        try:
            return bool(await self._get_async_client().ping())
        except Exception:  # a health check answers "no", whatever went wrong
            return False

    def close(self) -> None:
        """Close the sync client's connections, to the Sentinels too."""
        if self._client is not None:
            self._client.close()
            for sentinel in _sentinel_clients(self._client):
                sentinel.close()

    async def aclose(self) -> None:
        """Close the asyncio client's connections, to the Sentinels too."""
        if self._async_client is not None:
            await self._async_client.aclose()
            for sentinel in _sentinel_clients(self._async_client):
                await sentinel.aclose()

    def __repr__(self) -> str:
        return f"RedisStore(on_error={self.on_error!r}, prefix={self.prefix!r})"


def _sync_decide(client: Any, text: str) -> Callable[..., Any]:
    """How sync decisions reach Redis: threads share calls (``ThreadBatcher``), but on Cluster.

    Called as ``(keys, numbers, now, words=(), size=0)``: see ``batching.DecisionCall``.
    """
    script = client.register_script(text)
    if _is_cluster(client):

        def alone(
            keys: list[RedisKey], numbers: str, now: str, words: Sequence[str] = (), size: int = 0
        ) -> Any:
            return script(keys=keys, args=[now, numbers, *words])

        return alone
    return ThreadBatcher(script)


def _is_cluster(client: Any) -> bool:
    """A redis-py Cluster client (sync or asyncio): it routes each call by its keys' slot."""
    return client is not None and "Cluster" in type(client).__name__


def _check_one_slot(names: list[RedisKey], step: Step) -> None:
    """On a Cluster, a step's keys on two slots are a ``ValueError`` naming them.

    Redis would refuse the call (``CROSSSLOT``), and the store would take that
    for an outage; keys with one hash tag (the policy limiter's
    ``policy:limit:{identity}``) are always on one slot.
    """
    texts = [name if isinstance(name, str) else name.decode("utf-8", "surrogatepass")
             for name in names]  # fmt: skip
    tags = {hash_tag(text) for text in texts}
    if len(tags) < 2 or len({name_slot(text) for text in texts}) < 2:
        return
    owners = [key for _, key, _, _ in step.charges]
    owners += [key for key in step.blocks for _ in range(2)]
    owners += [key for key, _, _ in step.leases]
    if step.penalty is not None:
        owners += [step.penalty[0]] * 2
    slots: dict[str, int] = {}
    for owner, text in zip(owners, texts, strict=True):
        slots.setdefault(owner, name_slot(text))
    where = ", ".join(f"{key!r} on slot {slot}" for key, slot in slots.items())
    raise ValueError(
        "the keys of one step must share a Redis Cluster slot (one hash tag, as in "
        f"'limit:{{caller}}'); this step has {where}"
    )


def _ms(window_ns: int) -> int:
    if window_ns % NS_PER_MS:
        raise ValueError("Redis counts in whole milliseconds: windows must be whole ms")
    return window_ns // NS_PER_MS


def _parse(raw: list[Any], count: int) -> tuple[bool, list[ChargeResult]]:
    """One decision's answer: ``[now, admitted, then four values per charge]`` (times in us)."""
    results: list[ChargeResult] = []
    for index in range(count):
        base = 2 + index * 4
        results.append(
            (
                raw[base] == 1,
                int(raw[base + 1]),
                int(raw[base + 2]) * NS_PER_US,
                int(raw[base + 3]) * NS_PER_US,
            )
        )
    return raw[1] == 1, results


def _parse_one(raw: list[Any]) -> ChargeResult:
    """The answer of a decision of one enforced charge."""
    return raw[2] == 1, int(raw[3]), int(raw[4]) * NS_PER_US, int(raw[5]) * NS_PER_US


def _parse_step(raw: list[Any], step: Step, taken: list[tuple[str, str]]) -> StepResult:
    """A step's answer: ``[now_us, outcome, index, until_ms, failures, streak, 4 per charge]``."""
    now_ns = int(raw[0]) * NS_PER_US
    outcome = int(raw[1])
    if outcome == BLOCKED:
        index = int(raw[2])
        block = Block(step.blocks[index], int(raw[3]) * NS_PER_MS, int(raw[4]), int(raw[5]))
        return StepResult(BLOCKED, [], now_ns, index, block)
    if outcome == REFUSED_BY_CAP:
        return StepResult(REFUSED_BY_CAP, [], now_ns, int(raw[2]))
    results: list[ChargeResult] = [
        (raw[at] == 1, int(raw[at + 1]), int(raw[at + 2]) * NS_PER_US, int(raw[at + 3]) * NS_PER_US)
        for at in range(6, 6 + 4 * len(step.charges), 4)
    ]
    if outcome == ADMITTED:
        return StepResult(ADMITTED, results, now_ns, leases=tuple(taken))
    until = int(raw[3])
    if not until or step.penalty is None:
        return StepResult(REFUSED_BY_RATE, results, now_ns)
    block = Block(step.penalty[0], until * NS_PER_MS, int(raw[4]), int(raw[5]))
    return StepResult(REFUSED_BY_RATE, results, now_ns, block=block)


def _hosts(url: str) -> list[tuple[str, int]]:
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    seeds = []
    for item in netloc.split(","):
        host, _, port = item.rpartition(":")
        seeds.append((host.strip("[]") or "127.0.0.1", int(port or 6379)))
    return seeds


def _sentinel_parts(url: str) -> tuple[list[tuple[str, int]], str, int]:
    parts = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    if not parts:
        raise ValueError(
            "a redis+sentinel:// URL names the service: redis+sentinel://h:26379/mymaster"
        )
    db = int(parts[1]) if len(parts) > 1 else 0
    return _hosts(url), parts[0], db


def _async_from_url(url: str, options: dict[str, Any]) -> Any:
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # many tasks at once wait for one of 64 connections instead of failing
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=_ASYNC_CONNECTIONS,
        timeout=_POOL_WAIT,
        retry=Retry(NoBackoff(), 1),
        **options,
    )
    return redis.asyncio.Redis.from_pool(pool)  # owns the pool: aclose() closes it


def _sentinel_clients(client: Any) -> list[Any]:
    """The clients of the Sentinels behind a ``master_for`` client; [] for any other."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(manager.sentinels) if manager is not None else []


def _async_cluster(seeds: list[tuple[str, int]], options: dict[str, Any]) -> Any:
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    nodes = [ClusterNode(h, p) for h, p in seeds]
    return RedisCluster(startup_nodes=nodes, retry=Retry(NoBackoff(), 1), **options)


def _async_sentinel(
    seeds: list[tuple[str, int]], service: str, db: int, options: dict[str, Any]
) -> Any:
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel(seeds, **options)
    return sentinel.master_for(service, db=db, **options)
