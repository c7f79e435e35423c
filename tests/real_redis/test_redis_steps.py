"""Steps (``RedisStore.decide``) against real servers: one call, one slot, atomic, outages.

The step contract itself runs on every store in tests/contract/test_steps.py;
here is what only Redis has: the command a step costs (seen with ``MONITOR``),
Cluster slots, processes racing through one server, the data a step leaves for
the single operations, and what a step answers while Redis is away.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ratekeeper import Limiter, LockoutRule, StoreUnavailableError
from ratekeeper.algorithms import ALGORITHMS
from ratekeeper.policy import policy_from_text
from ratekeeper.rates import NS_PER_MS, Rate
from ratekeeper.stores import (
    ADMITTED,
    BLOCKED,
    REFUSED_BY_CAP,
    REFUSED_BY_RATE,
    LimitSpec,
    RedisStore,
    Step,
    StepResult,
)
from ratekeeper.stores.redis.keys import key_slot, key_tag
from ratekeeper.stores.redis.scripts import script_text
from support import step_race
from support.policies import EVERYTHING
from support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

MINUTE = LimitSpec.of(ALGORITHMS["fixed_window"], Rate(3, 60_000 * NS_PER_MS))
HOUR = LimitSpec.of(ALGORITHMS["sliding_log"], Rate(10, 3_600_000 * NS_PER_MS))
API, CAP, LOGIN, PENALTY = "api:{u1}", "cap:{u1}", "login:{u1}", "penalty:{u1}"
PENALTY_RULE = LockoutRule(threshold=2, window=60.0, block=10.0)
LOGIN_RULE = LockoutRule(threshold=1, window=60.0, block=30.0)
TTL_NS = 30_000 * NS_PER_MS


def full_step(cost: int = 1) -> Step:
    """A concurrency cap, a lockout block, two rates and a penalty (and its block)."""
    return Step(
        charges=[(MINUTE, API, cost, False), (HOUR, API, cost, False)],
        blocks=(LOGIN, PENALTY),
        leases=((CAP, 2, TTL_NS),),
        penalty=(PENALTY, PENALTY_RULE),
    )


class ClientCommands:
    """The commands clients send to ``nodes`` while it is open, seen with ``MONITOR``.

    Commands a script runs show with a ``lua`` source and are left out: what
    is left is what went over the wire. A marker ``ECHO`` sent to each node
    when reading ends the reading, so nothing is waited for by time.
    """

    def __init__(self, nodes: list[RedisServer]) -> None:
        self._watchers = [node.client() for node in nodes]
        self._clients = [node.client() for node in nodes]  # for the markers
        for client in self._clients:
            client.ping()  # connected before monitoring: its HELLO is not seen
        self._monitors: list[Any] = []

    def __enter__(self) -> ClientCommands:
        self._monitors = [watcher.monitor().__enter__() for watcher in self._watchers]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for monitor in self._monitors:
            monitor.__exit__()
        for client in self._clients + self._watchers:
            client.close()

    def names(self) -> list[str]:
        marker = f"end-{uuid.uuid4().hex}"
        for client in self._clients:
            client.echo(marker)
        seen = []
        for monitor in self._monitors:
            while True:
                command = monitor.next_command()
                if marker in command["command"]:
                    break
                if command["client_type"] != "lua":
                    seen.append(command["command"].split(" ", 1)[0].upper())
        return seen


@pytest.fixture(params=["redis", "redis-cluster"])
def deployment(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[RedisServer]]]:
    """The URL of a flushed server (or Cluster) and its nodes that take commands."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        yield url, [request.getfixturevalue("redis_server")]
    else:
        url = request.getfixturevalue("redis_cluster_url")
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        yield url, cluster.masters()


def _prepared(store: RedisStore, case: str) -> Step:
    """The state ``case`` starts from, made with single operations; the step to decide."""
    if case == "rate-refused":
        store.apply([(MINUTE, API, 3, False)])
    elif case == "rate-refused-starting-a-block":
        store.apply([(MINUTE, API, 3, False)])
        store.lockouts.record_failure(PENALTY, PENALTY_RULE)
    elif case == "cap-refused":
        store.leases.acquire(CAP, 2, 30.0)
        store.leases.acquire(CAP, 2, 30.0)
    elif case == "lockout-blocked":
        store.lockouts.record_failure(LOGIN, LOGIN_RULE)
    elif case == "penalty-blocked":
        store.lockouts.record_failure(PENALTY, PENALTY_RULE)
        store.lockouts.record_failure(PENALTY, PENALTY_RULE)
    return full_step()


EXPECTED = {
    "admitted": (ADMITTED, -1),
    "rate-refused": (REFUSED_BY_RATE, -1),
    "rate-refused-starting-a-block": (REFUSED_BY_RATE, -1),
    "cap-refused": (REFUSED_BY_CAP, 0),
    "lockout-blocked": (BLOCKED, 0),
    "penalty-blocked": (BLOCKED, 1),
}


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize("case", list(EXPECTED))
async def test_a_step_is_one_evalsha_and_no_other_command(
    deployment: tuple[str, list[RedisServer]], case: str, face: str
) -> None:
    url, nodes = deployment
    store = RedisStore.from_url(url, timeout=2.0)
    step = _prepared(store, case)
    # warm: connections made, the script loaded (NOSCRIPT, SCRIPT LOAD) on this slot's node
    warm = Step(charges=[(MINUTE, "warm:{u1}", 0, False)], blocks=("warm:{u1}",))
    if face == "sync":
        store.decide(warm)
    else:
        await store.decide_async(warm)

    with ClientCommands(nodes) as commands:
        if face == "sync":
            result = store.decide(step)
        else:
            result = await store.decide_async(step)
        sent = commands.names()

    assert (result.outcome, result.index) == EXPECTED[case]
    if case == "rate-refused-starting-a-block":
        assert result.block is not None
        assert result.block.blocked
    assert sent == ["EVALSHA"]
    store.close()
    await store.aclose()


def test_every_script_is_built_whole_and_loads(redis_server: RedisServer) -> None:
    client = redis_server.client()
    for name in ("decide", "lease_acquire", "lease_release", "lockout_failure"):
        text = script_text(name)
        assert not re.search(r"^\s*--! include", text, re.MULTILINE), name
        assert client.script_load(text)
    # the decide script makes the lease and lockout functions in its step branch only
    decide = script_text("decide")
    step_branch = decide.index("if kind >= 2 then")
    for function in ("leases_held", "lease_take", "block_of", "record_failure"):
        assert decide.count(f"local function {function}(") == 1
        assert decide.index(f"local function {function}(") > step_branch
    client.close()


# Cluster slots


def test_a_store_says_what_it_can_do(redis_url: str, redis_cluster_url: str) -> None:
    standalone = RedisStore.from_url(redis_url)
    cluster = RedisStore.from_url(redis_cluster_url)

    assert (standalone.never_waits, standalone.one_slot) == (False, False)
    assert (cluster.never_waits, cluster.one_slot) == (False, True)
    standalone.close()
    cluster.close()


SLOT_KEYS = ["user:1", "api:{u1}", "scanner:api:{demo-pro}", "{}", "a{}b{c}", "x}y", "\udcff", "é"]


def test_the_slot_of_a_key_is_the_slot_redis_gives_each_of_its_names(
    redis_cluster_url: str, redis_cluster: RedisCluster
) -> None:
    store = RedisStore.from_url(redis_cluster_url)
    node = redis_cluster.masters()[0].client()
    for key in SLOT_KEYS:
        step = Step(
            charges=[(MINUTE, key, 1, False)],
            blocks=(key,),
            leases=((key, 3, TTL_NS),),
            penalty=(key, PENALTY_RULE),
        )
        names, *_ = store._step_args(step)
        slots = {node.execute_command("CLUSTER KEYSLOT", name) for name in names}
        assert slots == {store.slot_of(key)} == {key_slot(key)}, key
    assert key_tag("scanner:api:{demo-pro}") == "demo-pro"
    assert key_tag("user:1") == "user:1"
    node.close()
    store.close()


def test_a_step_with_keys_on_two_slots_is_a_value_error_naming_them_on_a_cluster(
    redis_cluster_url: str, redis_url: str
) -> None:
    assert key_slot("{u1}") != key_slot("{u2}")
    step = Step(
        charges=[(MINUTE, "api:{u1}", 1, False)],
        blocks=("login:{u2}",),
        leases=(("cap:{u1}", 2, TTL_NS),),
    )
    cluster = RedisStore.from_url(redis_cluster_url, timeout=2.0)
    standalone = RedisStore.from_url(redis_url, timeout=2.0)

    with pytest.raises(ValueError, match="one hash tag") as refused:
        cluster.decide(step)

    assert "'api:{u1}' on slot" in str(refused.value)
    assert "'login:{u2}' on slot" in str(refused.value)
    assert (cluster.errors, cluster.degraded) == (0, False)  # not taken for an outage
    assert cluster.leases.in_use("cap:{u1}") == 0
    assert standalone.decide(step).outcome == ADMITTED  # one server: any keys go together
    cluster.close()
    standalone.close()


# what a step leaves is what the single operations read


def test_a_step_writes_the_keys_and_values_the_single_operations_use(
    redis_url: str, redis_server: RedisServer
) -> None:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    client = redis_server.client(decode_responses=True)

    admitted = store.decide(full_step())
    refused = [store.decide(full_step(cost=5)) for _ in range(2)]  # the second blocks
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000

    ((lease_key, lease_id),) = admitted.leases
    assert lease_key == CAP
    assert client.zrange("rk:lease:cap:{u1}", 0, -1) == [lease_id]
    expiry = client.zscore("rk:lease:cap:{u1}", lease_id)
    assert now_ms < expiry <= now_ms + 30_000
    assert 0 < client.pttl("rk:lease:cap:{u1}") <= 30_000
    block = refused[1].block
    assert block is not None
    state = client.get("rk:lockout:penalty:{u1}:block")
    until, streak, last_end = (int(word) for word in state.split())
    assert (until * NS_PER_MS, streak, last_end) == (block.until_ns, 1, until)
    assert client.exists("rk:lockout:penalty:{u1}:log") == 0  # a block clears the log
    assert store.lockouts.status(PENALTY).until_ns == block.until_ns
    assert [each.key for each in store.lockouts.blocks()] == [PENALTY]
    assert store.leases.release(CAP, lease_id) is True
    assert store.lockouts.unblock(PENALTY) is True
    assert store.decide(full_step()).outcome == ADMITTED
    client.close()
    store.close()


# batching


async def test_steps_that_arrive_together_share_script_calls_and_keep_the_cap(
    redis_url: str, redis_server: RedisServer
) -> None:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    step = Step(charges=[(MINUTE, "api:{b}", 0, False)], leases=(("cap:{b}", 5, TTL_NS),))
    await store.decide_async(step)  # warm
    client = redis_server.client()
    before = int(client.info("commandstats")["cmdstat_evalsha"]["calls"])

    results = await asyncio.gather(*(store.decide_async(step) for _ in range(60)))

    calls = int(client.info("commandstats")["cmdstat_evalsha"]["calls"]) - before
    assert [result.outcome for result in results].count(ADMITTED) == 4  # the warm one holds one
    assert calls < 60
    assert store.leases.in_use("cap:{b}") == 5
    client.close()
    await store.aclose()


async def test_plain_decisions_and_steps_share_calls_and_one_count(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    forty = LimitSpec.of(ALGORITHMS["fixed_window"], Rate(40, 60_000 * NS_PER_MS))
    step = Step(
        charges=[(forty, "api:{m}", 1, False)],
        blocks=("ban:{m}",),
        leases=(("cap:{m}", 100, TTL_NS),),
    )  # 4 keys, an answer of 9: its own size, not a plain decision's
    await store.decide_async(Step(charges=[(forty, "warm:{m}", 0, False)]))

    answers = await asyncio.gather(
        *(
            store.decide_async(step)
            if index % 2
            else store.apply_async([(forty, "api:{m}", 1, False)])
            for index in range(60)
        )
    )

    steps = [answer for answer in answers if isinstance(answer, StepResult)]
    plain = [answer for answer in answers if not isinstance(answer, StepResult)]
    admitted = sum(step.admitted for step in steps) + sum(admitted for admitted, _ in plain)
    assert admitted == 40  # one counter, whichever kind of decision charged it
    assert store.leases.in_use("cap:{m}") == sum(step.admitted for step in steps)
    assert all(len(step.results) == 1 for step in steps if step.outcome != REFUSED_BY_CAP)
    await store.aclose()


def test_threads_racing_steps_through_shared_calls_keep_the_cap(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, timeout=2.0)
    step = Step(charges=[(MINUTE, "api:{t}", 0, False)], leases=(("cap:{t}", 7, TTL_NS),))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: store.decide(step), range(160)))

    assert [result.outcome for result in results].count(ADMITTED) == 7
    assert store.leases.in_use("cap:{t}") == 7
    store.close()


# processes racing


def _race(url: str, units: int, block_after: int | None) -> list[Any]:
    """8 worker processes, 25 steps each (support/step_race.py): their reports."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(8)
    answers = context.Queue()
    workers = [
        context.Process(
            target=step_race.race_into,
            args=(answers, url, 25, start, units, block_after if index == 0 else None),
        )
        for index in range(8)
    ]
    for worker in workers:
        worker.start()
    try:
        return [answers.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()


def test_eight_processes_racing_steps_never_pass_the_cap_nor_a_block_set_mid_race(
    redis_url: str, redis_server: RedisServer
) -> None:
    """200 steps on a cap of 5; one racer blocks the caller after 10 steps of its own."""
    reports = _race(redis_url, 1_000, block_after=10)
    (until_ns,) = [until for _, _, until in reports if until is not None]
    starts_ms = until_ns // NS_PER_MS - 60_000
    steps = [each for _, seen, _ in reports for each in seen]
    admitted = [now_ns // NS_PER_MS for outcome, now_ns in steps if outcome == ADMITTED]
    blocked = [now_ns // NS_PER_MS for outcome, now_ns in steps if outcome == BLOCKED]
    client = redis_server.client()

    assert len(steps) == 200
    assert REFUSED_BY_CAP in {outcome for outcome, _ in steps}  # the cap was raced for
    assert max(most for most, _, _ in reports) <= step_race.LIMIT  # never more than 5 held
    assert max(admitted) <= starts_ms  # nobody admitted once the block started
    assert min(blocked) >= starts_ms
    assert len(blocked) >= 15  # at least the blocker's own 15 steps after it
    assert client.zcard(f"rk:lease:{step_race.CAP}") == 0  # every slot given back: none leaked
    client.close()


def test_eight_processes_racing_steps_past_a_rate_leave_no_lease_held(
    redis_url: str, redis_server: RedisServer
) -> None:
    """200 steps on a cap of 5 and a rate of 20: the 180 refused hold nothing afterwards."""
    reports = _race(redis_url, 20, block_after=None)
    outcomes = [outcome for _, seen, _ in reports for outcome, _ in seen]
    client = redis_server.client()

    assert len(outcomes) == 200
    assert outcomes.count(ADMITTED) == 20  # exactly the rate
    assert REFUSED_BY_RATE in outcomes
    assert max(most for most, _, _ in reports) <= step_race.LIMIT
    assert client.zcard(f"rk:lease:{step_race.CAP}") == 0  # only the 20 held one, and gave it back
    client.close()


# outages


def _down_store(server: RedisServer, on_error: str, **options: Any) -> RedisStore:
    return RedisStore.from_url(server.url, on_error=on_error, timeout=0.2, **options)  # type: ignore[arg-type]


async def _decide(store: RedisStore, step: Step, face: str) -> StepResult:
    if face == "sync":
        return store.decide(step)
    return await store.decide_async(step)


@pytest.mark.parametrize("face", ["sync", "async"])
async def test_failing_open_a_step_is_admitted_with_its_leases_and_nobody_is_blocked(
    restartable_redis: RedisServer, caplog: pytest.LogCaptureFixture, face: str
) -> None:
    store = _down_store(restartable_redis, "open")
    store.lockouts.record_failure(LOGIN, LOGIN_RULE)
    assert store.decide(full_step()).outcome == BLOCKED
    restartable_redis.stop()

    with caplog.at_level(logging.WARNING, logger="ratekeeper.redis"):
        down = [await _decide(store, full_step(cost=cost), face) for cost in (1, 5, 1)]

    assert [result.outcome for result in down] == [ADMITTED] * 3
    assert all(len(result.leases) == 1 and result.block is None for result in down)
    assert all(result.results[0][:2] == (True, 3) for result in down)
    assert store.errors == 3
    assert store.degraded
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    restartable_redis.start()
    back = store.decide(full_step())
    assert not store.degraded
    assert back.outcome == ADMITTED  # a crash took the block with it (no persistence)
    store.close()
    await store.aclose()


@pytest.mark.parametrize("face", ["sync", "async"])
async def test_failing_closed_a_step_is_store_unavailable(
    restartable_redis: RedisServer, face: str
) -> None:
    store = _down_store(restartable_redis, "closed")
    assert store.decide(full_step()).outcome == ADMITTED
    restartable_redis.stop()

    with pytest.raises(StoreUnavailableError):
        await _decide(store, full_step(), face)

    assert store.errors == 1
    restartable_redis.start()
    assert (await _decide(store, full_step(), face)).outcome == ADMITTED
    store.close()
    await store.aclose()


def test_failing_local_a_step_is_decided_in_memory_at_this_instances_share(
    restartable_redis: RedisServer,
) -> None:
    store = _down_store(restartable_redis, "local", instances=3)  # 3/minute: 1 here
    restartable_redis.stop()

    first, second = (store.decide(full_step()) for _ in range(2))

    assert first.outcome == ADMITTED
    assert first.results[0][:2] == (True, 0)  # its share of the minute's 3
    assert store.leases.in_use(CAP) == 1  # the slot is held locally
    assert second.outcome == REFUSED_BY_RATE
    assert store.lockouts.status(PENALTY).failures == 1  # the penalty counted locally
    assert store.leases.in_use(CAP) == 1
    restartable_redis.start()
    generation = store.generation
    assert store.decide(full_step()).outcome == ADMITTED  # Redis again: exact, afresh
    assert store.generation == generation + 1  # the local counts are void
    assert store.leases.in_use(CAP) == 1
    store.close()


# one policy decision through the Limiter: one EVALSHA, whatever it checks

REQUEST: dict[str, Any] = {"method": "POST", "path": "/login", "client_ip": "192.0.2.9"}

#: case -> (requests before it: "ok" checked and released, "held" never released,
#: "failed" answered 401), the decision's (status, refused_by)
DECISIONS = {
    "admitted": (["ok"], (200, None)),
    "rate-refused": (["ok"] * 3, (429, None)),
    "cap-refused": (["held"] * 2, (429, "cap:slots")),
    "lockout-blocked": (["failed"] * 2, (429, "lockout:login")),
    "penalty-blocked": (["ok"] * 5, (429, "penalty")),
}


@pytest.mark.parametrize("case", list(DECISIONS))
def test_a_policy_decision_is_one_evalsha_and_no_other_command(
    deployment: tuple[str, list[RedisServer]], case: str
) -> None:
    """A cap, a lockout, two rates and a penalty: before issue 11 this took up to 8 round
    trips (lockout and penalty reads, lease, charge, give-back, penalty failure)."""
    url, nodes = deployment
    store = RedisStore.from_url(url, timeout=2.0)
    limiter = Limiter(policy_from_text(EVERYTHING), store=store)
    before, (status, refused_by) = DECISIONS[case]
    for kind in before:  # also loads the script on this key's node
        decision = limiter.check(**REQUEST, lease=True)
        if kind == "failed":
            limiter.record_response(decision, 401)
        if kind != "held":
            limiter.release(decision)

    with ClientCommands(nodes) as commands:
        decision = limiter.check(**REQUEST, lease=True)
        sent = commands.names()

    assert (decision.status_code, decision.refused_by) == (status, refused_by)
    assert sent == ["EVALSHA"]
    limiter.release(decision)
    store.close()
