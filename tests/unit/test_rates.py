"""parse_rates: the accepted forms, the order of the result and the errors."""

from __future__ import annotations

import pytest

from ratekeeper.algorithms import FixedWindow
from ratekeeper.rates import NS_PER_SECOND, Rate, parse_rates
from ratekeeper.stores.base import LimitSpec

SECOND = NS_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY  # as Envoy's rate limit service counts a month
YEAR = 365 * DAY


@pytest.mark.parametrize(
    ("text", "limit", "window_ns"),
    [
        ("5/second", 5, SECOND),
        ("5/s", 5, SECOND),
        ("5/sec", 5, SECOND),
        ("60/minute", 60, MINUTE),
        ("60/min", 60, MINUTE),
        ("60/m", 60, MINUTE),
        ("1000/hour", 1000, HOUR),
        ("1000/h", 1000, HOUR),
        ("50000/day", 50000, DAY),
        ("50000/d", 50000, DAY),
        ("5 per second", 5, SECOND),
        ("100 per 15 minutes", 100, 15 * MINUTE),
        ("100/15m", 100, 15 * MINUTE),
        ("5/30s", 5, 30 * SECOND),
        ("10/2 hours", 10, 2 * HOUR),
        ("7/3d", 7, 3 * DAY),
        ("  5 / second  ", 5, SECOND),
        ("5/SECOND", 5, SECOND),
        ("100 PER 15 Minutes", 100, 15 * MINUTE),
        ("5000/week", 5000, WEEK),
        ("5000/w", 5000, WEEK),
        ("10/2 weeks", 10, 2 * WEEK),
        ("100000/month", 100000, MONTH),
        ("1/3 months", 1, 3 * MONTH),
        ("1000000/year", 1000000, YEAR),
        ("1000000/y", 1000000, YEAR),
        ("5/YR", 5, YEAR),
    ],
)
def test_parse_rates_reads_one_rate_as_limit_and_window_in_nanoseconds(
    text: str, limit: int, window_ns: int
) -> None:
    assert parse_rates(text) == (Rate(limit, window_ns),)


def test_parse_rates_reads_unlimited_as_no_rates() -> None:
    assert parse_rates("unlimited") == ()
    assert parse_rates("  unlimited ") == ()


def test_parse_rates_splits_on_semicolons_and_sorts_by_window() -> None:
    assert parse_rates("1000/day; 5/second ;100 per 15 minutes;60/m") == (
        Rate(5, SECOND),
        Rate(60, MINUTE),
        Rate(100, 15 * MINUTE),
        Rate(1000, DAY),
    )


def test_parse_rates_orders_by_window_not_by_limit() -> None:
    # 10 per 2 seconds has the longer window though its limit is smaller than 60/s
    assert parse_rates("10/2s;60/second") == (Rate(60, SECOND), Rate(10, 2 * SECOND))


def test_parsed_rates_leave_burst_unset_so_capacity_is_the_limit() -> None:
    (rate,) = parse_rates("5/second")
    assert rate.burst is None
    assert rate.capacity == 5
    assert rate.window == 1.0


@pytest.mark.parametrize(
    ("text", "message_part"),
    [
        ("five/second", "malformed rate 'five/second'"),
        ("5 second", "malformed rate '5 second'"),
        ("5/", "malformed rate '5/'"),
        ("/second", "malformed rate '/second'"),
        ("5/15", "malformed rate '5/15'"),
        ("5/1.5s", "malformed rate '5/1.5s'"),
        ("-5/second", "malformed rate '-5/second'"),
        ("5//second", "malformed rate '5//second'"),
        ("5 per", "malformed rate '5 per'"),
        ("5/second;ten/minute", "malformed rate 'ten/minute'"),
    ],
)
def test_parse_rates_names_the_malformed_part(text: str, message_part: str) -> None:
    with pytest.raises(ValueError, match="malformed rate") as caught:
        parse_rates(text)
    assert message_part in str(caught.value)


@pytest.mark.parametrize(
    ("text", "unit"),
    [("5/fortnight", "'fortnight'"), ("5/second;1/decade", "'decade'"), ("3/15 ms", "'ms'")],
)
def test_parse_rates_names_an_unknown_unit(text: str, unit: str) -> None:
    with pytest.raises(ValueError, match="unknown time unit") as caught:
        parse_rates(text)
    assert unit in str(caught.value)


@pytest.mark.parametrize("text", ["0/second", "5/second;0/minute", "0 per 15 minutes"])
def test_parse_rates_refuses_a_zero_limit_naming_it(text: str) -> None:
    bad = next(item for item in text.split(";") if item.startswith("0"))
    with pytest.raises(ValueError, match="at least 1") as caught:
        parse_rates(text)
    assert repr(bad) in str(caught.value)


def test_parse_rates_refuses_a_zero_length_window() -> None:
    with pytest.raises(ValueError, match=r"rate '5/0s' .* has an empty window"):
        parse_rates("5/0s")


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("5/second;10/second", "1s"),
        ("5/second;10/1s", "1s"),
        ("1/60s;10/minute", "60s"),
        ("100/60m;10/hour", "3600s"),
    ],
)
def test_parse_rates_refuses_two_rates_with_one_window(text: str, window: str) -> None:
    with pytest.raises(ValueError, match="two rates share the window") as caught:
        parse_rates(text)
    assert f"window {window} " in str(caught.value)


@pytest.mark.parametrize(
    "text", ["unlimited;5/second", "5/second;unlimited", "unlimited;unlimited"]
)
def test_parse_rates_refuses_unlimited_mixed_with_rates(text: str) -> None:
    with pytest.raises(ValueError, match="'unlimited' cannot be combined"):
        parse_rates(text)


@pytest.mark.parametrize("text", ["", "  ", "5/second;", ";5/second", "5/second;;10/minute"])
def test_parse_rates_refuses_empty_items(text: str) -> None:
    with pytest.raises(ValueError, match="empty rate in"):
        parse_rates(text)


def test_parse_rates_refuses_what_is_not_a_string() -> None:
    with pytest.raises(TypeError, match="rates must be a string"):
        parse_rates(5)  # type: ignore[arg-type]


def test_parse_rates_reads_unlimited_in_any_case() -> None:
    assert parse_rates("Unlimited") == ()


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(5, SECOND), "5/second"),
        (Rate(100, 15 * MINUTE), "100/15m"),
        (Rate(10, 2 * HOUR), "10/2h"),
        (Rate(3, 90 * SECOND), "3/90s"),
        (Rate(3, SECOND // 2), "3/0.5s"),
        (Rate(5, SECOND, burst=10), "5/second (burst 10)"),
        (Rate(5, WEEK), "5/week"),
        (Rate(5, MONTH), "5/month"),
        (Rate(5, YEAR), "5/year"),
        (Rate(5, 14 * DAY), "5/14d"),
    ],
)
def test_rate_prints_as_a_compact_rate_string(rate: Rate, text: str) -> None:
    assert str(rate) == text


@pytest.mark.parametrize(
    "text",
    [
        "5/second", "60/minute", "1000/hour", "50000/day", "100/15m", "10/2h", "3/90s", "7/3d",
        "9/week", "9/month", "9/year", "9/2 weeks",
    ],
)  # fmt: skip
def test_a_parsed_rate_prints_back_to_a_string_that_parses_to_it(text: str) -> None:
    (rate,) = parse_rates(text)
    assert parse_rates(str(rate)) == (rate,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 0, "window_ns": SECOND}, "limit must be at least 1"),
        ({"limit": 1, "window_ns": 0}, "window must be positive"),
        ({"limit": 1, "window_ns": SECOND, "burst": 0}, "burst must be at least 1"),
    ],
)
def test_rate_refuses_values_no_algorithm_can_use(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rate(**kwargs)


def test_a_year_is_the_longest_window_a_policy_may_hold() -> None:
    """365 days is every algorithm's bound (algorithms/bounds.py): a year fits, two do not."""
    (year,) = parse_rates("5/year")
    assert LimitSpec.of(FixedWindow(), year).window_ns == YEAR
    (two,) = parse_rates("5/2 years")
    with pytest.raises(ValueError, match="longer than 365 days"):
        LimitSpec.of(FixedWindow(), two)
