"""The retry core driven by hand: a made-up clock, scripted answers, no server, no sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import pytest

from ratekeeper.client import Pacer, RetryPolicy, WaitEvent
from ratekeeper.client._core import (
    Action,
    Answer,
    AwaitGate,
    Deliver,
    GiveUp,
    Hooks,
    Reply,
    RequestFacts,
    Send,
    Sleep,
    retry_flow,
)
from ratekeeper.client._pacing import pace_key

WALL = 1_700_000_000.0
KEY = pace_key("https", "api.example", None, ["Bearer a"])


def answer(status: int, **fields: str) -> Answer:
    lowered: Mapping[str, str] = {k.replace("_", "-"): v for k, v in fields.items()}
    return Answer(status, lowered.get)


class Run:
    """One request's flow, driven: the clock moves only by the sleeps it asks for."""

    def __init__(
        self,
        method: str = "GET",
        *,
        replayable: bool = True,
        pacer: Pacer | None = None,
        uniform: Callable[[], float] = lambda: 0.5,
        events: list[WaitEvent] | None = None,
        now: float = 0.0,
        **policy: float,
    ) -> None:
        self.now = now
        facts = RequestFacts(
            method, "https://api.example/x", replayable, KEY if pacer is not None else None
        )
        hooks = Hooks(events.append if events is not None else None)
        self.flow = retry_flow(
            facts,
            self.reply(),
            RetryPolicy(**policy),
            pacer,
            hooks,
            uniform,  # type: ignore[arg-type]
        )
        self.actions: list[Action] = []
        self.result: tuple[object, int, float] | None = None
        self.pending: Action | None = next(self.flow)

    def reply(self, answer: Answer | None = None) -> Reply:
        return Reply(self.now, WALL + self.now, answer)

    def step(self, given: Answer | None = None) -> Action | None:
        """Do the pending action (a send is answered with ``given``); the next one."""
        action = self.pending
        assert action is not None
        self.actions.append(action)
        if isinstance(action, Sleep):
            self.now += action.seconds
        try:
            self.pending = self.flow.send(self.reply(given if isinstance(action, Send) else None))
        except StopIteration as stop:
            self.result, self.pending = stop.value, None
        return self.pending

    def answer_all(self, answers: Iterator[Answer] | list[Answer]) -> tuple[object, int, float]:
        answers = iter(answers)
        while self.pending is not None:
            self.step(next(answers) if isinstance(self.pending, Send) else None)
        assert self.result is not None
        return self.result

    def sleeps(self) -> list[tuple[float, str]]:
        return [(a.seconds, a.reason) for a in self.actions if isinstance(a, Sleep)]


def test_retry_after_is_waited_as_given_plus_jitter() -> None:
    run = Run(uniform=lambda: 1.0)
    verdict = run.answer_all([answer(429, retry_after="5"), answer(200)])
    assert verdict == (Deliver(), 2, 5.5)
    assert run.sleeps() == [(5.5, "retry-after")]  # 5 s and the most jitter: 10 % of it


@pytest.mark.parametrize(
    ("given", "uniform", "waited"),
    [("30", 0.0, 30.0), ("30", 1.0, 31.0), ("100", 1.0, 101.0), ("0", 1.0, 0.0)],
)
def test_the_jitter_is_at_most_ten_percent_and_one_second_never_less(
    given: str, uniform: float, waited: float
) -> None:
    run = Run(uniform=lambda: uniform, max_wait=200)
    run.answer_all([answer(429, retry_after=given), answer(200)])
    assert run.sleeps() == [(waited, "retry-after")]


def test_max_retries_counts_retries_after_the_first_attempt() -> None:
    run = Run(max_retries=3)
    verdict, attempts, waited = run.answer_all([answer(429, retry_after="1")] * 10)
    assert isinstance(verdict, GiveUp)
    assert attempts == 4
    assert len(run.sleeps()) == 3
    assert waited == pytest.approx(3 * 1.05)


def test_no_retries_gives_up_on_the_first_429() -> None:
    verdict, attempts, waited = Run(max_retries=0).answer_all([answer(429, retry_after="1")])
    assert isinstance(verdict, GiveUp)
    assert (attempts, waited) == (1, 0.0)


def test_a_wait_over_max_wait_gives_up_at_once() -> None:
    run = Run(max_wait=60)
    verdict, attempts, waited = run.answer_all([answer(429, retry_after="120")])
    assert verdict == GiveUp("the server asks for 120 s, over max_wait (60 s)")
    assert (attempts, waited) == (1, 0.0)
    assert run.sleeps() == []


def test_max_total_wait_caps_the_sum() -> None:
    run = Run(max_total_wait=10, uniform=lambda: 0.0)
    verdict, attempts, waited = run.answer_all([answer(429, retry_after="4")] * 5)
    assert isinstance(verdict, GiveUp)
    assert (attempts, waited) == (3, 8.0)  # a third wait of 4 s would make 12


@pytest.mark.parametrize(
    ("method", "status", "replayable", "retried"),
    [
        ("POST", 429, True, True),  # refused, so not processed: safe to send again
        ("POST", 503, True, False),  # maybe processed: only idempotent methods
        ("PUT", 503, True, True),
        ("GET", 503, True, True),
        ("GET", 429, False, False),  # a streamed body cannot be sent again
        ("GET", 500, True, False),
        ("GET", 200, True, False),
    ],
)
def test_which_requests_are_retried(
    method: str, status: int, replayable: bool, retried: bool
) -> None:
    run = Run(method, replayable=replayable)
    verdict, attempts, _ = run.answer_all([answer(status, retry_after="1"), answer(200)])
    assert verdict == Deliver()
    assert attempts == (2 if retried else 1)


def test_backoff_with_full_jitter_when_no_field_says_how_long() -> None:
    run = Run(uniform=lambda: 1.0, backoff_base=0.5, backoff_max=3.0, max_retries=5)
    run.answer_all([answer(503)] * 5 + [answer(200)])
    assert run.sleeps() == [(0.5, "backoff"), (1.0, "backoff"), (2.0, "backoff"),
                            (3.0, "backoff"), (3.0, "backoff")]  # fmt: skip
    low = Run(uniform=lambda: 0.25)
    low.answer_all([answer(429), answer(429), answer(200)])
    assert low.sleeps() == [(0.125, "backoff"), (0.25, "backoff")]


def test_the_reset_fields_are_used_when_there_is_no_retry_after() -> None:
    run = Run(uniform=lambda: 0.0)
    run.answer_all([answer(429, ratelimit='"api";r=0;t=7'), answer(200)])
    assert run.sleeps() == [(7.0, "ratelimit")]


def test_every_wait_is_told_to_the_hook_with_its_reason() -> None:
    events: list[WaitEvent] = []
    Run(events=events, uniform=lambda: 0.0).answer_all(
        [answer(429, retry_after="2"), answer(503), answer(200)]
    )
    assert [(e.reason, e.seconds, e.attempt, e.status, e.waited) for e in events] == [
        ("retry-after", 2.0, 1, 429, 0.0),
        ("backoff", 0.0, 2, 503, 2.0),
    ]
    assert events[0].method == "GET"
    assert events[0].url == "https://api.example/x"


def test_the_log_has_one_line_per_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ratekeeper.client")
    Run(uniform=lambda: 0.0).answer_all([answer(429, retry_after="2"), answer(200)])
    assert [r.getMessage() for r in caplog.records] == [
        "ratekeeper.client: waiting 2.000 s before GET https://api.example/x "
        "(retry-after; status 429, attempt 1)"
    ]


# --------------------------------------------------------------------------- #
# Pacing.                                                                      #
# --------------------------------------------------------------------------- #


def test_a_spent_quota_makes_the_next_request_wait_for_its_reset() -> None:
    pacer = Pacer()
    first = Run(pacer=pacer, uniform=lambda: 0.0)
    first.answer_all([answer(200, x_ratelimit_remaining="0", x_ratelimit_reset="5")])
    second = Run(pacer=pacer, uniform=lambda: 0.0)
    assert second.pending == Sleep(5.0, "pacing")
    verdict = second.answer_all([answer(200, x_ratelimit_remaining="9", x_ratelimit_reset="10")])
    assert verdict == (Deliver(), 1, 5.0)


def test_the_first_request_to_a_new_quota_goes_alone() -> None:
    pacer = Pacer()
    probe, other = Run(pacer=pacer), Run(pacer=pacer)
    assert isinstance(probe.pending, Send)
    assert isinstance(other.pending, AwaitGate)
    gate = other.pending.gate
    opened: list[bool] = []
    gate.subscribe(lambda: opened.append(True))
    probe.step(answer(200, x_ratelimit_remaining="5", x_ratelimit_reset="10"))
    assert opened == [True]
    assert isinstance(other.step(), Send)  # the gate opened: it is admitted


def test_requests_in_flight_are_counted_against_the_remaining() -> None:
    pacer = Pacer()
    Run(pacer=pacer).answer_all([answer(200, x_ratelimit_remaining="3", x_ratelimit_reset="10")])
    runs = [Run(pacer=pacer, uniform=lambda: 0.0) for _ in range(4)]
    assert [type(run.pending) for run in runs] == [Send, Send, Send, Sleep]
    assert runs[3].pending == Sleep(10.0, "pacing")


def test_after_the_reset_one_request_probes_the_new_window() -> None:
    pacer = Pacer()
    Run(pacer=pacer).answer_all([answer(200, x_ratelimit_remaining="0", x_ratelimit_reset="5")])
    later = [Run(pacer=pacer, now=6.0) for _ in range(2)]
    assert [type(run.pending) for run in later] == [Send, AwaitGate]


def test_a_floor_keeps_requests_in_hand() -> None:
    pacer = Pacer(floor=2)
    Run(pacer=pacer).answer_all([answer(200, x_ratelimit_remaining="3", x_ratelimit_reset="10")])
    runs = [Run(pacer=pacer, uniform=lambda: 0.0) for _ in range(2)]
    assert [type(run.pending) for run in runs] == [Send, Sleep]


def test_smooth_mode_spreads_what_is_left_over_the_time_left() -> None:
    pacer = Pacer(smooth=True)
    Run(pacer=pacer).answer_all([answer(200, x_ratelimit_remaining="4", x_ratelimit_reset="8")])
    runs = [Run(pacer=pacer, uniform=lambda: 0.0) for _ in range(2)]
    assert isinstance(runs[0].pending, Send)
    assert runs[1].pending == Sleep(2.0, "smooth")  # 8 s over 4 requests


def test_a_429_spends_the_quota_for_everyone_until_its_retry_after() -> None:
    pacer = Pacer()
    refused = Run(pacer=pacer, uniform=lambda: 0.0)
    refused.step(answer(429, retry_after="4"))
    other = Run(pacer=pacer, uniform=lambda: 0.0)
    assert other.pending == Sleep(4.0, "pacing")


def test_a_pacing_wait_over_max_wait_is_not_waited_the_answer_decides() -> None:
    pacer = Pacer()
    Run(pacer=pacer).answer_all([answer(200, x_ratelimit_remaining="0", x_ratelimit_reset="600")])
    run = Run(pacer=pacer, max_wait=60)
    assert isinstance(run.pending, Send)
    verdict, attempts, _ = run.answer_all([answer(429, retry_after="590")])
    assert isinstance(verdict, GiveUp)
    assert attempts == 1


def test_a_probe_that_fails_lets_the_others_go_on() -> None:
    pacer = Pacer()
    probe, other = Run(pacer=pacer), Run(pacer=pacer)
    assert isinstance(other.pending, AwaitGate)
    probe.flow.close()  # the send raised: the runner closes the flow
    assert isinstance(other.step(), Send)  # it probes now


def test_quotas_of_other_hosts_and_credentials_are_apart() -> None:
    assert pace_key("https", "API.example", 443, ["a"]) == pace_key(
        "https", "api.example", None, ["a"]
    )
    assert pace_key("https", "api.example", None, ["a"]) != pace_key(
        "https", "api.example", None, ["b"]
    )
    assert pace_key("http", "api.example", None, ["a"]) != pace_key(
        "https", "api.example", None, ["a"]
    )
    assert pace_key("http", "h", None, [None, "x"]) != pace_key("http", "h", None, ["x", None])


def test_the_pacing_state_is_bounded() -> None:
    pacer = Pacer(max_keys=3)
    for n in range(50):
        pacer.admit(pace_key("https", f"host{n}", None, []), 0.0)
    assert len(pacer) == 3


def test_a_quota_evicted_while_others_wait_opens_their_gate() -> None:
    pacer = Pacer(max_keys=1)
    first = pace_key("https", "a", None, [])
    pacer.admit(first, 0.0)
    waiting = pacer.admit(first, 0.0)
    assert waiting.gate is not None
    opened: list[bool] = []
    waiting.gate.subscribe(lambda: opened.append(True))
    pacer.admit(pace_key("https", "b", None, []), 0.0)
    assert opened == [True]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="max_wait"):
        RetryPolicy(max_wait=float("nan"))
    with pytest.raises(ValueError, match="floor"):
        Pacer(floor=-1)
