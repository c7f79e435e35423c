"""Policy validation: every example loads; every malformed policy names file, line, field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ratekeeper import MemoryStore, PolicyError, load_policy
from ratekeeper.cli import main
from ratekeeper.limiter import Limiter
from ratekeeper.policy import hash_api_key, policy_from_dict, policy_from_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

BASE = """\
version: 1
name: shop
limits:
  api: {by: api_key, rate: 10/minute}
keys:
  - {key: k1, id: k1}
categories:
  - name: api
    match: /api/**
    charge: [api]
"""


def _error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from_text(textwrap.dedent(text))
    return caught.value


def test_the_four_seed_examples_exist_and_load() -> None:
    assert {path.stem for path in EXAMPLES} >= {"flowtriq", "scanner", "flowcms", "utmstack"}
    for path in EXAMPLES:
        policy = load_policy(path)
        assert policy.name == path.stem
        assert policy.file == str(path)


def test_examples_keep_only_hashes_of_demo_keys() -> None:
    policy = load_policy(ROOT / "examples" / "scanner.yaml")
    free = next(key for key in policy.keys if key.id == "demo-free")
    assert free.sha256 == hash_api_key("demo-free")
    assert "demo-free" not in repr(free.sha256)


def test_a_minimal_policy_loads_and_limits() -> None:
    t = [1_700_000_000.0]
    limiter = Limiter(policy_from_text(BASE), store=MemoryStore(clock=lambda: t[0]))
    answers = [
        limiter.check(path="/api/x", headers={"X-API-Key": "k1"}).status_code for _ in range(11)
    ]
    assert answers == [200] * 10 + [429]


def test_unknown_field_names_line_field_and_suggests_the_right_name() -> None:
    error = _error(BASE + "categorys: []\n")
    assert error.line == 11
    assert "unknown field 'categorys'" in str(error)
    assert "did you mean 'categories'" in str(error)


def test_malformed_rate_names_line_and_field_path() -> None:
    error = _error(BASE.replace("rate: 10/minute", "rate: 10/minit"))
    assert error.line == 4
    assert error.field == "limits.api.rate"
    assert "10/minit" in error.message
    assert str(error).startswith("<policy>:4: limits.api.rate: ")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BASE.replace("charge: [api]", "charge: [nope]"), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}:10: categories[0].charge: no limit named 'nope'")


def test_missing_file_and_bad_yaml_are_policy_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nlimits: [\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="invalid YAML") as caught:
        load_policy(bad)
    assert caught.value.line is not None


def test_duplicate_yaml_keys_are_refused() -> None:
    error = _error(BASE + "name: again\n")
    assert "duplicate key 'name'" in str(error)
    assert error.line == 11


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("version: 1", "version: 2"), "only version 1"),
        (("rate: 10/minute", "rate: 0/minute"), "at least 1"),
        (("rate: 10/minute", "rate: 10/minute;20/minute"), "share the window"),
        (("by: api_key", "by: cookie"), "cannot count by 'cookie'"),
        (("by: api_key", "by: 'header:'"), "needs a name"),
        (("by: api_key", "by: [ip, ip]"), "named twice"),
        (("match: /api/**", "match: api/**"), "must start with '/'"),
        (("match: /api/**", "match: /api/**/x"), "'**' may only end a pattern"),
        (("match: /api/**", "match: /api/{id"), "a parameter is a whole segment"),
        (("match: /api/**", "match: 'G3T /api/**'"), "is not an HTTP method"),
        (("charge: [api]", "charge: [api, api]"), "charged twice"),
        (("charge: [api]", "charge: {api: -1}"), "at least 0"),
        (("{key: k1, id: k1}", "{key: k1, id: k1, plan: gold}"), "no plan named 'gold'"),
        (("{key: k1, id: k1}", "{id: k1}"), "exactly one of 'key'"),
        (("{key: k1, id: k1}", "{key_sha256: abc, id: k1}"), "64 hexadecimal"),
        (("name: shop", "name: 'shop floor'"), "not a usable name"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in BASE
    error = _error(BASE.replace(old, new, 1))
    assert message in str(error)
    assert error.line is not None


def test_plans_must_size_limits_without_a_default() -> None:
    error = _error(
        """\
        version: 1
        limits:
          api: {by: api_key}
        plans:
          free: {limits: {api: 10/minute}}
          pro: {limits: {}}
        categories:
          - {name: api, match: /api/**, charge: [api]}
        """
    )
    assert "plan 'pro' gives no rate for limit 'api'" in str(error)


def test_plan_values_must_name_declared_limits() -> None:
    error = _error(BASE + "plans:\n  free: {limits: {apii: 5/minute}}\n")
    assert "no limit named 'apii'" in str(error)
    assert error.field == "plans.free.limits.apii"


def test_anonymous_plan_must_exist() -> None:
    assert "no plan named 'anon'" in str(_error(BASE + "anonymous_plan: anon\n"))


def test_unknown_placeholder_in_a_body_is_a_load_error() -> None:
    text = BASE + "responses:\n  rate_limited:\n    body: {wait: '{retry_in}'}\n"
    error = _error(text)
    assert "unknown placeholder {retry_in}" in str(error)
    assert error.field == "responses.rate_limited.body.wait"


def test_burst_is_only_for_token_bucket() -> None:
    error = _error(BASE.replace("rate: 10/minute}", "rate: 10/minute, burst: 5}"))
    assert "token_bucket" in str(error)


def test_concurrency_limits_take_no_rate() -> None:
    error = _error(BASE.replace("rate: 10/minute}", "rate: 10/minute, concurrency: 3}"))
    assert "takes no rate" in str(error)


def test_path_parameter_keys_need_the_parameter_in_every_route() -> None:
    error = _error(BASE.replace("by: api_key", "by: 'path:node'"))
    assert "does not have" in str(error)


def test_lockouts_and_penalty_are_validated() -> None:
    error = _error(
        BASE + "lockouts:\n  login: {categories: [signin], threshold: 5, window: 15m, block: 15m}\n"
    )
    assert "no category named 'signin'" in str(error)
    error = _error(BASE + "lockouts:\n  login: {categories: [api], threshold: 5, window: soon}\n")
    assert "missing required field 'block'" in str(error)
    error = _error(
        BASE + "lockouts:\n  login: {categories: [api], threshold: 5, window: soon, block: 1m}\n"
    )
    assert "malformed duration 'soon'" in str(error)
    error = _error(BASE + "penalty: {rejections: 5, window: 1m, block: 1m, response: nope}\n")
    assert "no response named 'nope'" in str(error)


def test_toml_policies_load_with_field_paths() -> None:
    text = textwrap.dedent(
        """\
        version = 1
        name = "shop"
        [limits.api]
        by = "ip"
        rate = "5/second"
        [[categories]]
        name = "api"
        match = "/api/**"
        charge = ["api"]
        """
    )
    policy = policy_from_text(text, toml=True)
    assert policy.limits["api"].by == ("ip",)
    with pytest.raises(PolicyError, match=r"limits\.api\.rate: malformed rate"):
        policy_from_text(text.replace("5/second", "5/sec0nd"), toml=True)


def test_policy_from_dict_validates_plain_data() -> None:
    policy = policy_from_dict(
        {
            "version": 1,
            "limits": {"api": {"by": "ip", "rate": "1/second"}},
            "categories": [{"name": "api", "match": "/**", "charge": ["api"]}],
        }
    )
    assert policy.categories[0].name == "api"


def test_policy_check_cli_prints_a_summary_and_fails_on_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["policy", "check", str(ROOT / "examples" / "scanner.yaml")])
    assert result.exit_code == 0, result.output
    assert "scans: POST /api/scans -> charges api, scans" in result.output
    assert "anonymous (anonymous callers): api=30/minute, scans=5/hour" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text(BASE.replace("10/minute", "ten/minute"), encoding="utf-8")
    result = runner.invoke(main, ["policy", "check", str(broken)])
    assert result.exit_code == 1
    assert f"{broken}:4: limits.api.rate: malformed rate" in result.output
