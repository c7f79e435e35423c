"""On a store that keeps one decision on one slot (Redis Cluster), a policy whose
decision would need keys on two slots is refused when the limiter is built.

Every key of a decision carries the identity it counts by as its hash tag; a
category whose limits count by one identity and whose lockout, cap or penalty
counts by another cannot be decided in one script there. Memory and
standalone Redis take such policies; a store declares ``one_slot``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ratekeeper import Limiter, MemoryStore, PolicyError, load_policy
from ratekeeper.identity import Caller
from ratekeeper.policy import policy_from_text

EXAMPLES = Path(__file__).parents[2] / "examples"


class _OneSlot(MemoryStore):
    """A store that declares what Redis Cluster needs: one decision, one slot."""

    one_slot = True


BASE = """\
version: 1
limits:
  api: {by: api_key, rate: 10/minute}
  everyone: {by: global, rate: 1000/minute}
  cap: {by: ip, concurrency: 2}
plans: {free: {limits: {api: 10/minute}}}
keys: [{key: k1, id: one, plan: free}, {key: k2, id: two, plan: free}]
categories:
  - {name: health, match: GET /health, exempt: true}
  - {name: api, match: /api/**, charge: [api]}
"""


def policy(text: str) -> object:
    return policy_from_text(textwrap.dedent(text), name="t")


def test_a_lockout_counted_by_another_identity_is_refused_naming_both() -> None:
    text = BASE + textwrap.dedent(
        """\
        lockouts:
          login: {categories: [api], failure_status: [401], by: ip, threshold: 3,
                  window: 1 minute, block: 1 minute}
        """
    )
    with pytest.raises(PolicyError) as refused:
        Limiter(policy(text), _OneSlot())  # type: ignore[arg-type]

    message = str(refused.value)
    assert "category 'api'" in message
    assert "api_key (limit api)" in message
    assert "ip (lockout login)" in message
    assert isinstance(refused.value, ValueError)
    Limiter(policy(text), MemoryStore())  # type: ignore[arg-type]  # one process: any policy


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param(("[api]", "[api, everyone]"), "global (limit everyone)", id="global"),
        pytest.param(("[api]", "[api, cap]"), "ip (cap cap)", id="cap"),
        pytest.param(
            (
                "categories:",
                "penalty: {rejections: 3, window: 1 minute, block: 1 minute}\ncategories:",
            ),
            "ip (the penalty)",
            id="penalty",
        ),
    ],
)
def test_a_cap_a_global_limit_or_the_penalty_on_another_identity_is_refused(
    change: tuple[str, str], named: str
) -> None:
    with pytest.raises(PolicyError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Limiter(policy(BASE.replace(*change)), _OneSlot())  # type: ignore[arg-type]


def test_a_route_lockout_counts_where_its_routes_can_match() -> None:
    def with_route_lockout(route: str) -> str:
        return BASE + textwrap.dedent(
            f"""\
            lockouts:
              login: {{match: "{route}", failure_status: [401], by: ip, threshold: 3,
                      window: 1 minute, block: 1 minute}}
            """
        )

    Limiter(policy(with_route_lockout("POST /login")), _OneSlot())  # type: ignore[arg-type]
    Limiter(policy(with_route_lockout("GET /health")), _OneSlot())  # type: ignore[arg-type]
    for route in ("POST /api/login", "/api/**"):
        with pytest.raises(PolicyError, match="lockout login"):
            Limiter(policy(with_route_lockout(route)), _OneSlot())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["scanner", "flowcms", "flowtriq", "utmstack"])
def test_the_example_policies_each_count_a_decision_by_one_identity(name: str) -> None:
    Limiter(load_policy(EXAMPLES / f"{name}.yaml"), _OneSlot())


def test_items_counted_by_two_identities_are_not_decided_in_one_step_there() -> None:
    text = BASE + "  - {name: login, match: POST /login, charge: [cap], require_key: false}\n"
    limiter = Limiter(policy(text), _OneSlot())  # type: ignore[arg-type]
    one, two = Caller(api_key="k1"), Caller(api_key="k2", client_ip="192.0.2.1")

    assert limiter.check_items([("api", one), ("api", one)]).allowed
    with pytest.raises(ValueError, match="2 identities"):
        limiter.check_items([("api", one), ("api", two)])
    with pytest.raises(ValueError, match="one slot"):
        limiter.check_items([("api", one), ("login", two)], lease=True)
    shared = Limiter(policy(text), MemoryStore())  # type: ignore[arg-type]
    assert shared.check_items([("api", one), ("api", two)]).allowed
