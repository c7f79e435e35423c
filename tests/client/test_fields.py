"""Reading what a response says about waiting: every field, every form, and the garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from ratekeeper.client import Advice, read_advice
from ratekeeper.client._fields import ietf_quotas, reset_seconds, server_skew, wait_seconds

WALL = 1_700_000_000.0  # the local wall clock of every test: 2023-11-14T22:13:20Z


def date(epoch: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch, UTC), usegmt=True)


def advice(**fields: str) -> Advice:
    lowered = {name.replace("_", "-").lower(): value for name, value in fields.items()}
    return read_advice(lowered.get, WALL)


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("30", 30.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        (date(WALL + 120), 120.0),
        (date(WALL - 60), 0.0),  # a date in the past: retry now, never a negative sleep
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value: str, wait: float) -> None:
    assert advice(retry_after=value) == Advice(wait, "retry-after")


@pytest.mark.parametrize(
    "value",
    ["-5", "abc", "", "1e3", "nan", "inf", "99999999999999999999999", "86401",
     "Mon, 99 Foo 2023 00:00:00 GMT", date(WALL + 2 * 86_400)],
)  # fmt: skip
def test_a_malformed_negative_or_huge_retry_after_is_ignored(value: str) -> None:
    assert advice(retry_after=value) == Advice()


def test_a_bad_retry_after_falls_through_to_the_reset_fields() -> None:
    got = advice(retry_after="soon", x_ratelimit_remaining="0", x_ratelimit_reset="12")
    assert got == Advice(12.0, "x-ratelimit-reset", 0, 12.0)


@pytest.mark.parametrize(
    ("value", "wait"),
    [
        ("12", 12.0),  # delta seconds: below 10^9
        ("0.25", 0.25),
        (str(int(WALL) + 40), 40.0),  # epoch seconds
        (str(int(WALL * 1000) + 2500), 2.5),  # epoch milliseconds
        (str(int(WALL) - 100), 0.0),  # an epoch in the past: now
        ("999999999", None),  # 31 years as a delta: over a day, garbage
        (str(int(WALL) + 90_000), None),  # an epoch over a day away
        ("1000000000000000", None),  # 10^15: garbage whatever the unit
        ("-3", None),
        ("x", None),
        (None, None),
    ],
)
def test_x_ratelimit_reset_is_told_apart_by_magnitude(
    value: str | None, wait: float | None
) -> None:
    assert reset_seconds(value, WALL, 0.0) == wait


def test_the_remaining_and_reset_trio_is_read() -> None:
    got = advice(x_ratelimit_limit="60", x_ratelimit_remaining="59", x_ratelimit_reset="30")
    assert got == Advice(30.0, "x-ratelimit-reset", 59, 30.0)


def test_the_older_drafts_ratelimit_reset_and_remaining() -> None:
    assert advice(ratelimit_remaining="3", ratelimit_reset="9") == Advice(
        9.0, "ratelimit-reset", 3, 9.0
    )


def test_ietf_draft_10_items_pace_on_the_one_that_reaches_zero() -> None:
    field = '"api-1m";r=0;t=42, "api-1h";r=940;t=3000'
    assert advice(ratelimit=field) == Advice(42.0, "ratelimit", 0, 42.0)


def test_ietf_items_none_spent_report_the_least_left() -> None:
    field = '"api-1m";r=7;t=42, "api-1h";r=3;t=3000'
    assert advice(ratelimit=field) == Advice(3000.0, "ratelimit", 3, 3000.0)


def test_ietf_draft_12_syntax() -> None:
    assert advice(ratelimit="default;a=0;w=17") == Advice(17.0, "ratelimit", 0, 17.0)


def test_ietf_items_with_bad_parameters_are_left_out_the_good_ones_kept() -> None:
    field = '"a";r=-1;t=5, "b";r=2;t=x, c;r=1, "d";r=4;t=8, ,"e,f";r=0;t=9'
    assert [(q.name, q.remaining, q.reset) for q in ietf_quotas(field)] == [
        ("d", 4, 8.0),
        ("e,f", 0, 9.0),
    ]


def test_ietf_garbage_falls_back_to_the_x_ratelimit_fields() -> None:
    got = advice(ratelimit="%%%", x_ratelimit_remaining="1", x_ratelimit_reset="5")
    assert got == Advice(5.0, "x-ratelimit-reset", 1, 5.0)


def test_retry_after_first_but_the_quota_is_still_read() -> None:
    got = advice(retry_after="3", ratelimit='"api";r=0;t=4')
    assert got == Advice(3.0, "retry-after", 0, 4.0)


def test_no_field_says_nothing() -> None:
    assert advice() == Advice()
    assert advice(x_ratelimit_remaining="lots") == Advice()


@pytest.mark.parametrize(
    ("server_ahead", "skew"),
    [
        (0.0, 0.0),  # the same clock: inside the Date's second, no correction
        (-0.6, 0.0),
        (-300.0, 300.0),  # the server 5 minutes behind: believed
        (300.0, -300.0),  # the server 5 minutes ahead
    ],
)
def test_clock_skew_from_the_date_field(server_ahead: float, skew: float) -> None:
    server_now = int(WALL + server_ahead)
    assert server_skew(date(server_now), WALL) == pytest.approx(skew)


def test_an_epoch_reset_is_corrected_with_the_servers_date() -> None:
    server_now = WALL - 300  # its clock 5 minutes behind ours
    got = advice(date=date(server_now), x_ratelimit_remaining="0",
                 x_ratelimit_reset=str(int(server_now) + 20))  # fmt: skip
    assert got.wait == pytest.approx(20.0)


def test_an_http_date_retry_after_is_corrected_too() -> None:
    server_now = WALL + 600
    got = advice(date=date(server_now), retry_after=date(server_now + 10))
    assert got.wait == pytest.approx(10.0)


def test_a_garbage_date_field_means_no_correction() -> None:
    got = advice(date="yesterday", x_ratelimit_reset=str(int(WALL) + 20))
    assert got.wait == 20.0


def test_wait_seconds_bounds() -> None:
    assert wait_seconds("86400") == 86_400.0
    assert wait_seconds("86400.5") is None
    assert wait_seconds(None) is None
