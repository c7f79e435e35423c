"""``--envoy-config``: the reference service's YAML (envoyproxy/ratelimit) served as it documents.

The configs are the reference README's examples as it writes them (its
"Configuration" section, Examples 1 to 11), checked through a real gRPC
server with the servicer: which descriptors are limited, at what rate, the
call that goes over, and what the README says of each feature.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from envoy.service.ratelimit.v3 import rls_pb2
from reference_examples import (
    DETAILED,
    EXAMPLE4_FLAT,
    EXAMPLE4_NESTED,
    INTERNAL,
    MESSAGING,
    MONGO,
    PER_IP,
    REPLACES,
    SHADOW,
    SHARED,
    VALUE_TO_METRIC,
    WILDCARDS,
    descriptors_of,
)
from rls_support import Rls, RlsFactory, descriptor

from ratekeeper.policy import PolicyError, policy_from_dict
from ratekeeper.policy.envoy_config import (
    EnvoyConfigError,
    envoy_config_policy,
    load_envoy_config,
)

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
Unit = rls_pb2.RateLimitResponse.RateLimit

# ratekeeper's addition: several limits on one descriptor
TWO_LIMITS = """
domain: internal
descriptors:
  - key: tenant
    rate_limits:
      - {unit: second, requests_per_unit: 2}
      - {unit: hour, requests_per_unit: 3}
"""
MAX_UINT32 = 2**32 - 1


async def served(rls_factory: RlsFactory, text: str, tmp_path: Path) -> Rls:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    rls: Rls = await rls_factory(load_envoy_config(path))
    return rls


def limit_of(status: Any) -> tuple[int, int] | None:
    if not status.HasField("current_limit"):
        return None
    return status.current_limit.requests_per_unit, status.current_limit.unit


# (config, domain, descriptor entries, the limit it gets: (requests_per_unit, unit) or None)
LIMITS = [
    (MONGO, "mongo_cps", [("database", "users")], (500, Unit.SECOND)),
    (MONGO, "mongo_cps", [("database", "default")], (500, Unit.SECOND)),
    (MONGO, "mongo_cps", [("database", "other")], None),
    (MONGO, "another_domain", [("database", "users")], None),
    (MESSAGING, "messaging", [("message_type", "marketing"), ("to_number", "2061111111")],
     (5, Unit.DAY)),
    (MESSAGING, "messaging", [("to_number", "2061111111")], (100, Unit.DAY)),
    (MESSAGING, "messaging", [("message_type", "marketing")], None),  # a placeholder: no limit
    (MESSAGING, "messaging", [("message_type", "transactional"), ("to_number", "1")], None),
    (PER_IP, "edge_proxy_per_ip", [("remote_address", "50.0.0.1")], (10, Unit.SECOND)),
    # Example 4: a request is matched at its own depth only
    (EXAMPLE4_FLAT, "example4", [("key", "value"), ("subkey", "subvalue")], None),
    (EXAMPLE4_FLAT, "example4", [("key", "value")], (300, Unit.SECOND)),
    (EXAMPLE4_NESTED, "example4", [("key", "value"), ("subkey", "subvalue")], (300, Unit.SECOND)),
    (EXAMPLE4_NESTED, "example4", [("key", "value")], None),
    (INTERNAL, "internal", [("azure", "x")], (100, Unit.MINUTE)),
    (SHADOW, "example6", [("service", "auth-service"), ("user", "user-b")], (20, Unit.SECOND)),
    (SHADOW, "example6", [("service", "auth-service"), ("user", "user-c")], None),
    (DETAILED, "example8", [("key1", "unspecified_value")], (10, Unit.MINUTE)),
    (DETAILED, "example8", [("key1", "value1")], (20, Unit.MINUTE)),
    # Example 9: trailing, middle and several wildcards
    (WILDCARDS, "example9", [("key1", "value1")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("key1", "valueXYZ")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("key1", "value")], (20, Unit.MINUTE)),  # * matches nothing too
    (WILDCARDS, "example9", [("key1", "valu")], None),
    (WILDCARDS, "example9", [("path", "/api/123/action")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("path", "/api/user-id/action")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("path", "/api/123/other")], None),
    (WILDCARDS, "example9", [("route", "/api/v1/resource/123/action")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("route", "/api/v2/resource/456/action")], (20, Unit.MINUTE)),
    (WILDCARDS, "example9", [("route", "/api/v1/resource/123")], None),
    (VALUE_TO_METRIC, "example10",
     [("route", "api"), ("http_method", "GET"), ("subject_id", "123")], (60, Unit.MINUTE)),
    (SHARED, "example11", [("files", "files/a.pdf")], (10, Unit.HOUR)),
]  # fmt: skip


@pytest.mark.parametrize(("config", "domain", "entries", "limit"), LIMITS)
async def test_the_reference_readme_examples_limit_what_it_documents(
    rls_factory: RlsFactory,
    tmp_path: Path,
    config: str,
    domain: str,
    entries: list[tuple[str, str]],
    limit: tuple[int, int] | None,
) -> None:
    rls = await served(rls_factory, config, tmp_path)
    answer = await rls.ask(domain, descriptor(*entries))
    assert answer.overall_code == OK
    assert limit_of(answer.statuses[0]) == limit


async def test_marketing_messages_go_over_at_the_sixth_per_number_and_day(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, MESSAGING, tmp_path)
    to = lambda number: descriptor(("message_type", "marketing"), ("to_number", number))  # noqa: E731
    codes = [(await rls.ask("messaging", to("2061111111"))).overall_code for _ in range(6)]
    other = await rls.ask("messaging", to("2062222222"))
    assert codes == [OK] * 5 + [OVER]
    assert other.overall_code == OK  # each number counted apart
    assert other.statuses[0].limit_remaining == 4


async def test_both_descriptors_of_the_messaging_request_are_decided_together(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, MESSAGING, tmp_path)
    marketing = descriptor(("message_type", "marketing"), ("to_number", "2061111111"))
    number = descriptor(("to_number", "2061111111"))
    answers = [await rls.ask("messaging", marketing, number) for _ in range(6)]
    assert [a.overall_code for a in answers] == [OK] * 5 + [OVER]
    assert [limit_of(s) for s in answers[0].statuses] == [(5, Unit.DAY), (100, Unit.DAY)]
    assert answers[4].statuses[1].limit_remaining == 95
    # the refused sixth charged nothing (all or nothing; the reference counts it on both)
    assert (await rls.ask("messaging", number)).statuses[0].limit_remaining == 94


async def test_an_address_has_ten_a_second_and_the_black_listed_one_none(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    ip = descriptor(("remote_address", "50.0.0.1"))
    codes = [(await rls.ask("edge_proxy_per_ip", ip)).overall_code for _ in range(11)]
    black = await rls.ask("edge_proxy_per_ip", descriptor(("remote_address", "50.0.0.5")))
    assert codes == [OK] * 10 + [OVER]
    assert black.overall_code == OVER
    assert black.statuses[0].code == OVER
    assert limit_of(black.statuses[0]) == (0, Unit.SECOND)
    assert list(black.response_headers_to_add) == []  # no count, no Retry-After to wait for
    assert black.raw_body == b""


async def test_a_black_listed_descriptor_refuses_the_request_and_charges_the_others_nothing(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    ip = descriptor(("remote_address", "50.0.0.1"))
    black = descriptor(("remote_address", "50.0.0.5"))
    both = await rls.ask("edge_proxy_per_ip", ip, black)
    alone = await rls.ask("edge_proxy_per_ip", ip)
    assert both.overall_code == OVER
    assert [s.code for s in both.statuses] == [OK, OVER]
    assert both.statuses[0].limit_remaining == 10  # looked at, not charged
    assert alone.statuses[0].limit_remaining == 9


async def test_a_black_list_entry_in_shadow_mode_never_refuses(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    config = PER_IP.replace(
        "      requests_per_unit: 0\n", "      requests_per_unit: 0\n    shadow_mode: true\n"
    )
    rls = await served(rls_factory, config, tmp_path)
    answer = await rls.ask("edge_proxy_per_ip", descriptor(("remote_address", "50.0.0.5")))
    assert answer.overall_code == OK
    assert answer.statuses[0].code == OK
    assert limit_of(answer.statuses[0]) == (0, Unit.SECOND)


async def test_an_unlimited_descriptor_is_ok_with_the_largest_remaining_and_no_limit(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, INTERNAL, tmp_path)
    answers = [await rls.ask("internal", descriptor(("ldap", "x"))) for _ in range(3)]
    unknown = await rls.ask("internal", descriptor(("other", "x")))
    assert [a.overall_code for a in answers] == [OK] * 3
    assert answers[2].statuses[0].limit_remaining == MAX_UINT32
    assert limit_of(answers[2].statuses[0]) is None
    assert unknown.statuses[0].limit_remaining == 0  # not in the config: no limit, nothing more


async def test_rule_stats_count_shadow_mode_black_list_and_not_unlimited_or_peeks(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    from prometheus_client import generate_latest

    from ratekeeper.server.metrics import ServiceMetrics

    config = (
        PER_IP.replace("domain: edge_proxy_per_ip", "domain: d")
        + descriptors_of(SHADOW)
        + descriptors_of(INTERNAL)
    )
    rls = await served(rls_factory, config, tmp_path)
    metrics = ServiceMetrics(lambda: rls.holder.limiter.store)
    rls.holder.metrics = metrics  # type: ignore[attr-defined]
    user_a = descriptor(("service", "s"), ("user", "user-a"))
    for _ in range(11):
        await rls.ask("d", user_a)
    await rls.ask("d", descriptor(("remote_address", "50.0.0.5")), hits=3)
    await rls.ask("d", descriptor(("ldap", "x")))
    await rls.ask("d", descriptor(("remote_address", "50.0.0.1"), hits=0))
    text = generate_latest(metrics.registry).decode()
    rule = 'ratekeeper_envoy_rule_hits_total{rule="d.%s",stat="%s"} %s'
    assert rule % ("service.user_user-a", "total_hits", "11.0") in text
    assert rule % ("service.user_user-a", "within_limit", "10.0") in text
    assert rule % ("service.user_user-a", "over_limit", "1.0") in text  # and in shadow mode:
    assert rule % ("service.user_user-a", "shadow_mode", "1.0") in text
    assert rule % ("remote_address_50.0.0.5", "over_limit", "3.0") in text
    assert "d.ldap" not in text
    assert 'rule="d.remote_address"' not in text  # a peek is no hit


async def test_the_window_is_a_clock_aligned_fixed_window(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    ip = descriptor(("remote_address", "50.0.0.1"))
    rls.clock.t += 0.5
    for _ in range(10):
        await rls.ask("edge_proxy_per_ip", ip)
    over = await rls.ask("edge_proxy_per_ip", ip)
    rls.clock.t += 0.5  # the next whole second: a new window, all ten again
    again = await rls.ask("edge_proxy_per_ip", ip)
    assert over.overall_code == OVER
    assert over.statuses[0].duration_until_reset.ToTimedelta().total_seconds() <= 0.5
    assert again.overall_code == OK
    assert again.statuses[0].limit_remaining == 9


async def test_shadow_mode_never_denies_user_a_and_user_b_has_twenty(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, SHADOW, tmp_path)
    user = lambda name: descriptor(("service", "auth-service"), ("user", name))  # noqa: E731
    a = [await rls.ask("example6", user("user-a")) for _ in range(12)]
    b = [(await rls.ask("example6", user("user-b"))).overall_code for _ in range(21)]
    assert [answer.overall_code for answer in a] == [OK] * 12
    # the descriptor says OK too, as the reference's does, with nothing left of its 10
    assert a[11].statuses[0].code == OK
    assert limit_of(a[11].statuses[0]) == (10, Unit.SECOND)
    assert a[11].statuses[0].limit_remaining == 0
    assert b == [OK] * 20 + [OVER]


async def test_replaces_drops_the_named_limit_and_leaves_its_count_alone(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, REPLACES, tmp_path)
    one = descriptor(("key_1", "value_1"), ("user", "bkthomps"))
    two = descriptor(("key_2", "value_2"), ("user", "bkthomps"))
    together = [await rls.ask("example7", one, two) for _ in range(11)]
    assert [a.overall_code for a in together] == [OK] * 10 + [OVER]  # 10 / sec
    assert limit_of(together[0].statuses[0]) is None  # replaced: not limited
    assert limit_of(together[0].statuses[1]) == (10, Unit.SECOND)
    alone = [(await rls.ask("example7", one)).overall_code for _ in range(6)]
    assert alone == [OK] * 5 + [OVER]  # its 5 / sec untouched by the ten above
    rls.clock.t += 1
    only_two = [(await rls.ask("example7", two)).overall_code for _ in range(11)]
    assert only_two == [OK] * 10 + [OVER]


async def test_a_replaced_unlimited_descriptor_still_answers_unlimited(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    config = (
        "domain: d\ndescriptors:\n"
        "  - {key: a, rate_limit: {name: n, unlimited: true}}\n"
        "  - {key: b, rate_limit: {replaces: [{name: n}], unit: minute, requests_per_unit: 5}}\n"
    )
    rls = await served(rls_factory, config, tmp_path)
    answer = await rls.ask("d", descriptor(("a", "x")), descriptor(("b", "y")))
    assert answer.statuses[0].limit_remaining == MAX_UINT32  # as the reference's
    assert limit_of(answer.statuses[1]) == (5, Unit.MINUTE)


async def test_each_wildcard_match_counts_apart(rls_factory: RlsFactory, tmp_path: Path) -> None:
    rls = await served(rls_factory, WILDCARDS, tmp_path)
    first = [(await rls.ask("example9", descriptor(("key1", "value1")))).overall_code
             for _ in range(21)]  # fmt: skip
    second = await rls.ask("example9", descriptor(("key1", "value2")))
    assert first == [OK] * 20 + [OVER]
    assert second.overall_code == OK
    assert second.statuses[0].limit_remaining == 19


async def test_share_threshold_counts_every_match_of_the_pattern_as_one(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, SHARED, tmp_path)
    files = lambda name: descriptor(("files", f"files/{name}"))  # noqa: E731
    apart = lambda name: descriptor(("files_no_share", f"files_no_share/{name}"))  # noqa: E731
    for _ in range(5):
        assert (await rls.ask("example11", files("a.pdf"))).overall_code == OK
        assert (await rls.ask("example11", files("b.csv"))).overall_code == OK
    shared = await rls.ask("example11", files("c.txt"))
    isolated = [(await rls.ask("example11", apart("a.pdf"))).overall_code for _ in range(11)]
    other = await rls.ask("example11", apart("b.csv"))
    assert shared.overall_code == OVER
    assert isolated == [OK] * 10 + [OVER]
    assert other.overall_code == OK
    assert other.statuses[0].limit_remaining == 9


async def test_two_limits_on_one_descriptor_are_both_charged_and_the_tightest_reported(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, TWO_LIMITS, tmp_path)
    tenant = descriptor(("tenant", "t1"))
    first = await rls.ask("internal", tenant)
    second = await rls.ask("internal", tenant)
    third = await rls.ask("internal", tenant)  # 2/second reached
    rls.clock.t += 1
    fourth = await rls.ask("internal", tenant)
    rls.clock.t += 1
    fifth = await rls.ask("internal", tenant)  # 3/hour reached
    assert [a.overall_code for a in (first, second, third, fourth, fifth)] == [
        OK, OK, OVER, OK, OVER,
    ]  # fmt: skip
    assert limit_of(first.statuses[0]) == (2, Unit.SECOND)
    assert limit_of(fifth.statuses[0]) == (3, Unit.HOUR)


async def test_a_descriptor_limit_override_wins_over_the_config_as_the_reference_does(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, PER_IP, tmp_path)
    ip = lambda: descriptor(("remote_address", "50.0.0.1"), limit=(2, Unit.SECOND))  # noqa: E731
    codes = [(await rls.ask("edge_proxy_per_ip", ip())).overall_code for _ in range(3)]
    # a descriptor the config does not know is limited by its own limit too
    unknown = descriptor(("database", "x"), limit=(1, Unit.MINUTE))
    first, second = [await rls.ask("edge_proxy_per_ip", unknown) for _ in range(2)]
    # and the config's own 10 / second for the address is untouched by the overridden hits
    plain = await rls.ask("edge_proxy_per_ip", descriptor(("remote_address", "50.0.0.1")))
    assert codes == [OK, OK, OVER]
    assert limit_of(first.statuses[0]) == (1, Unit.MINUTE)
    assert [first.overall_code, second.overall_code] == [OK, OVER]
    assert plain.statuses[0].limit_remaining == 9


async def test_an_override_of_zero_refuses_and_an_override_is_never_replaced_or_shadowed(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, SHADOW + descriptors_of(REPLACES), tmp_path)
    zero = await rls.ask("example6", descriptor(("anything", "x"), limit=(0, Unit.HOUR)))
    user_a = descriptor(("service", "s"), ("user", "user-a"), limit=(1, Unit.SECOND))
    shadowed = [(await rls.ask("example6", user_a)).overall_code for _ in range(2)]
    one = descriptor(("key_1", "value_1"), ("user", "bkthomps"), limit=(1, Unit.SECOND))
    two = descriptor(("key_2", "value_2"), ("user", "bkthomps"))
    together = await rls.ask("example6", one, two)
    assert zero.overall_code == OVER
    assert limit_of(zero.statuses[0]) == (0, Unit.HOUR)
    assert shadowed == [OK, OVER]  # the override is not in shadow mode
    assert limit_of(together.statuses[0]) == (1, Unit.SECOND)  # not replaced


async def test_an_override_and_a_config_limit_are_decided_all_or_nothing(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, MESSAGING, tmp_path)
    capped = descriptor(("to_number", "1"), limit=(1, Unit.DAY))
    marketing = descriptor(("message_type", "marketing"), ("to_number", "1"))
    first = await rls.ask("messaging", marketing, capped)
    second = await rls.ask("messaging", marketing, capped)
    alone = await rls.ask("messaging", marketing)
    assert [first.overall_code, second.overall_code] == [OK, OVER]
    assert [s.code for s in second.statuses] == [OK, OVER]
    assert alone.statuses[0].limit_remaining == 3  # the refused second took nothing


async def test_an_override_without_a_unit_is_an_invalid_argument(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    import grpc

    rls = await served(rls_factory, PER_IP, tmp_path)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rls.ask("edge_proxy_per_ip", descriptor(("remote_address", "1"), limit=(5, 0)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "needs a unit" in (caught.value.details() or "")


async def test_empty_and_long_values_are_counted_as_the_reference_counts_them(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    config = (
        "domain: d\ndescriptors:\n"
        "  - {key: user, rate_limit: {unit: minute, requests_per_unit: 2}}\n"
    )
    rls = await served(rls_factory, config, tmp_path)
    for value in ("", "x" * 300, "y" * 300):  # an HTTP header like these would be a 400
        codes = [(await rls.ask("d", descriptor(("user", value)))).overall_code for _ in range(3)]
        assert codes == [OK, OK, OVER], len(value)


async def test_a_yaml_true_value_matches_the_text_envoy_sends(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    config = (
        "domain: d\ndescriptors:\n"
        "  - {key: beta, value: true, rate_limit: {unit: minute, requests_per_unit: 1}}\n"
        "  - {key: beta, rate_limit: {unit: minute, requests_per_unit: 9}}\n"
    )
    rls = await served(rls_factory, config, tmp_path)
    answer = await rls.ask("d", descriptor(("beta", "true")))
    assert limit_of(answer.statuses[0]) == (1, Unit.MINUTE)


async def test_an_override_for_a_domain_the_config_does_not_serve_is_not_limited(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    rls = await served(rls_factory, MONGO, tmp_path)
    other = descriptor(("database", "users"), limit=(1, Unit.MINUTE))
    answers = [await rls.ask("another_domain", other) for _ in range(2)]
    assert [a.overall_code for a in answers] == [OK, OK]
    assert limit_of(answers[1].statuses[0]) is None


async def test_a_directory_serves_one_domain_per_file(
    rls_factory: RlsFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "mongo.yaml").write_text(MONGO)
    (directory / "messaging.yml").write_text(MESSAGING)
    (directory / "notes.txt").write_text("not a config")
    rls: Rls = await rls_factory(load_envoy_config(directory))
    mongo = await rls.ask("mongo_cps", descriptor(("database", "users")))
    messaging = await rls.ask("messaging", descriptor(("to_number", "1")))
    assert limit_of(mongo.statuses[0]) == (500, Unit.SECOND)
    assert limit_of(messaging.statuses[0]) == (100, Unit.DAY)


def test_two_files_of_one_domain_are_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(MONGO)
    (tmp_path / "b.yaml").write_text(MONGO)
    with pytest.raises(EnvoyConfigError, match=r"b\.yaml: a second config for domain 'mongo_cps'"):
        load_envoy_config(tmp_path)


def test_the_compiled_policy_is_a_policy_with_a_tree_and_fixed_windows() -> None:
    data = envoy_config_policy(yaml.safe_load(MESSAGING))
    assert data["defaults"] == {"algorithm": "fixed_window"}
    assert list(data["envoy"]["trees"]) == ["messaging"]
    assert data["limits"]["envoy_1"] == {
        "by": ["header:message_type", "header:to_number"],
        "rate": "5/day",
        "shadow": False,
    }


def test_rules_are_named_as_the_reference_names_its_stats() -> None:
    data = envoy_config_policy(yaml.safe_load(MESSAGING), yaml.safe_load(WILDCARDS))
    marketing = data["envoy"]["trees"]["messaging"][0]
    assert marketing["descriptors"][0]["metric"] == "messaging.message_type_marketing.to_number"
    assert data["envoy"]["trees"]["example9"][1]["metric"] == "example9.path_/api/*/action"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("descriptors: []", "'domain'"),
        ("domain: ''", "cannot be empty"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {unit: fortnight, requests_per_unit: 1}}]",
         "fortnight"),
        ("domain: d\ndescriptors: [{value: a}]", "needs a 'key'"),
        ("domain: d\nextra: 1", "extra"),
        ("domain: d\ndescriptors: [{key: a, quota_mode: true}]", "quota_mode"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {unlimited: true, unit: second}}]",
         "no unit"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {name: x, replaces: [{name: x}],"
         " unit: second, requests_per_unit: 1}}]", "its own name"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {replaces: [{}], unit: second,"
         " requests_per_unit: 1}}]", "needs a 'name'"),
        ("domain: d\ndescriptors: [{key: a, value: b, share_threshold: true}]",
         "share_threshold goes with a value holding '*'"),
        ("domain: d\ndescriptors: [{key: a, rate_limits: [{name: x, unit: second,"
         " requests_per_unit: 1}]}]", "single 'rate_limit'"),
        ("domain: d\ndescriptors: [{key: a}, {key: a}]", "a second node for 'a'"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {unit: second, requests_per_unit: -1}}]",
         "whole number"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {}}]", "unit ''"),
        ("domain: d\ndescriptors: [{key: a, descriptors: [{key: b, rate_limit: {unit: second,"
         " requests_per_unit: 99999999999999}}]}]", "a > b: rate 99999999999999/second: limit"),
        ("domain: d\ndescriptors: [{key: a, shadow_mode: 'false'}]",
         "'shadow_mode' must be true or false"),
        ("domain: d\ndescriptors: [{key: a, rate_limit: {unlimited: 'no'}}]",
         "'unlimited' must be true or false"),
        ("domain: d\ndescriptors: [{key: a, value: [1, 2]}]", "'value' must be text"),
        ("domain: d\ndescriptors: [{key: A, descriptors: [{key: a}]}]",
         "keys 'A' and 'a' differ only in case"),
    ],
)  # fmt: skip
def test_a_config_ratekeeper_cannot_serve_is_refused_with_the_reason(
    config: str, message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_dict(envoy_config_policy(yaml.safe_load(config)))


def test_ratekeeper_serve_envoy_config_serves_the_reference_config_and_counts_its_stats(
    tmp_path: Path,
) -> None:
    import grpc
    import httpx
    from envoy.service.ratelimit.v3 import rls_pb2_grpc
    from rls_support import request

    from support.loopback import LoopbackProcess, free_port

    config = tmp_path / "config"  # a directory, as the reference's runtime directory
    config.mkdir()
    (config / "messaging.yaml").write_text(MESSAGING)
    http_port = free_port()

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "serve", "--envoy-config", str(config),
            "--registry", "none", "--port", str(http_port), "--grpc-port", str(port),
        ]  # fmt: skip

    with (
        LoopbackProcess("ratekeeper", command, tmp_path / "rk") as served,
        grpc.insecure_channel(served.address) as channel,
    ):
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        number = descriptor(("to_number", "2061234567"))
        answer = stub.ShouldRateLimit(request("messaging", number))
        marketing = descriptor(("message_type", "marketing"), ("to_number", "2061234567"))
        codes = [stub.ShouldRateLimit(request("messaging", marketing)).overall_code
                 for _ in range(6)]  # fmt: skip
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics").text
    assert answer.overall_code == OK
    assert limit_of(answer.statuses[0]) == (100, Unit.DAY)
    assert answer.statuses[0].limit_remaining == 99
    assert codes == [OK] * 5 + [OVER]
    # the reference's stats keys: the values written in the config, not the callers' numbers
    rule = 'ratekeeper_envoy_rule_hits_total{rule="messaging.%s",stat="%s"} %s'
    assert rule % ("to_number", "total_hits", "1.0") in metrics
    assert rule % ("to_number", "within_limit", "1.0") in metrics
    assert rule % ("message_type_marketing.to_number", "total_hits", "6.0") in metrics
    assert rule % ("message_type_marketing.to_number", "within_limit", "5.0") in metrics
    assert rule % ("message_type_marketing.to_number", "near_limit", "1.0") in metrics
    assert rule % ("message_type_marketing.to_number", "over_limit", "1.0") in metrics
    assert "2061234567" not in metrics


def test_serve_refuses_a_policy_and_an_envoy_config_together(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ratekeeper.cli import main

    config = tmp_path / "config.yaml"
    config.write_text(MESSAGING)
    result = CliRunner().invoke(
        main, ["serve", "--envoy-config", str(config), "--policy", str(config)]
    )
    assert result.exit_code != 0
    assert "not both" in result.output
