"""A penalty block started by a refusal is told to the block hooks, on every store.

The penalty (a client that keeps calling past its limit) is counted inside
the decision's step; the block it starts is told to ``block_hooks`` as a
lockout's is after a response (``BlockEvent``, lockout ``"penalty"``), so
the usage recorder audits it (``block.start``). Blocked calls after it are
not told again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ratekeeper import AsyncLimiter
from ratekeeper.engine import BlockEvent
from ratekeeper.policy import policy_from_text
from ratekeeper.rates import NS_PER_MS
from ratekeeper.stores.base import Store

PENALTY = """\
version: 1
name: t
limits:
  api: {by: ip, rate: 1/minute, algorithm: fixed_window}
categories:
  - {name: api, match: /**, charge: [api]}
penalty: {rejections: 3, window: 1 minute, block: 10 minutes}
"""


async def test_the_penalty_block_a_refusal_starts_is_told_once(
    store_factory: Callable[[Any], Store], clock: Any
) -> None:
    events: list[BlockEvent] = []
    limiter = AsyncLimiter(
        policy_from_text(PENALTY), store_factory(clock), block_hooks=[events.append]
    )
    codes = []
    for _ in range(6):
        codes.append((await limiter.check(path="/x", client_ip="192.0.2.1")).status_code)
        clock.now_ms += 1  # distinct failure times

    assert codes == [200, 429, 429, 429, 429, 429]  # the 4th and later: blocked
    (event,) = events  # the 4th call started it; the blocked ones are not told
    assert (event.key, event.lockout, event.category, event.key_id) == (
        "t:penalty:{192.0.2.1}", "penalty", "api", None,
    )  # fmt: skip
    assert event.until_ns == (clock.now_ms - 3 + 600_000) * NS_PER_MS
    assert event.streak == 1
