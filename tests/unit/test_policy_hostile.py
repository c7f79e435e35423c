"""Policy files that used to escape the loader's errors, or hang it (issue 10, item 4).

Each ends in a :class:`PolicyError` naming the file and, where there is one,
the line. How long loading takes against file size is measured by
``bench/bench_policy_load.py``, not here: these tests never time anything.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from ratekeeper import Limiter, MemoryStore, PolicyError, load_policy
from ratekeeper.policy import policy_from_dict, policy_from_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
MIB = 1 << 20

#: a valid policy to build on (5 lines)
BASE = """\
version: 1
limits:
  api: {by: ip, rate: 5/minute}
categories:
  - {name: api, match: /api/**, charge: [api]}
"""


def refused(text: str, *, toml: bool = False) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        policy_from_text(text, toml=toml)
    return caught.value


def refused_file(tmp_path: Path, content: str | bytes, name: str = "hostile.yaml") -> PolicyError:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.file == str(path)
    return caught.value


# nesting, numbers, aliases


def test_twenty_thousand_nested_brackets_are_refused_with_file_and_line(tmp_path: Path) -> None:
    error = refused_file(tmp_path, BASE + "description: " + "[" * 20_000 + "]" * 20_000 + "\n")

    assert error.line == 6
    assert "nest" in error.message


def test_nesting_in_block_style_is_refused_past_64_levels() -> None:
    deep = "".join(f"{'  ' * level}l{level}:\n" for level in range(70)) + "  " * 70 + "x: 1\n"

    error = refused(BASE + "description:\n" + textwrap.indent(deep, "  "))

    assert error.line is not None
    assert error.message == "nested deeper than 64 levels"


def test_nesting_of_64_levels_still_reads() -> None:
    body: Any = "{path}"
    for _ in range(60):
        body = [body]
    text = BASE + "responses: {rate_limited: {body: " + json.dumps(body) + "}}\n"

    assert policy_from_text(text).responses["rate_limited"].body == body


def test_a_five_thousand_digit_integer_is_refused_with_its_line(tmp_path: Path) -> None:
    error = refused_file(
        tmp_path, BASE + "penalty: {window: 1, block: 1, rejections: " + "9" * 5_001 + "}\n"
    )

    assert error.line == 6
    assert "5001 characters long" in error.message


def test_a_long_sexagesimal_integer_is_refused_before_it_is_computed() -> None:
    error = refused(
        BASE + "penalty: {window: 1, block: 1, rejections: " + ":".join(["59"] * 20_000) + "}\n"
    )

    assert error.line == 6


#: 509 bytes: each level repeats the one before nine times, so the body at the end
#: was 9**6 strings: 2-4 s to load, megabytes on every 429
ALIAS_BOMB = (
    BASE
    + "description:\n"
    + '  - &a0 ["{path}","{path}","{path}","{path}","{path}","{path}","{path}","{path}"]\n'
    + "".join(f"  - &a{n} [{','.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 6))
    + "responses: {rate_limited: {body: {x: [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]}}}\n"
)


def test_yaml_aliases_are_refused_naming_the_line(tmp_path: Path) -> None:
    assert len(ALIAS_BOMB.encode()) < 600

    error = refused_file(tmp_path, ALIAS_BOMB)

    assert error.line == 8  # the first alias: *a0, on the line of &a1
    assert "aliases (*a0) are not allowed" in error.message


def test_merge_keys_are_refused_naming_the_line() -> None:
    error = refused(BASE + "defaults: {<<: {algorithm: fixed_window}}\n")

    assert (error.line, "merge keys" in error.message) == (6, True)


def test_an_anchor_without_an_alias_is_harmless() -> None:
    policy = policy_from_text(BASE.replace("{by: ip", "&api {by: ip"))

    assert policy.limits["api"].by == ("ip",)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2001-13-45", "month must be in 1..12"),  # an implicit timestamp
        ("!!bool maybe", "cannot read 'maybe' as bool"),
        ("!!int twelve", "cannot read 'twelve' as int"),
        ("!!float x", "cannot read 'x' as float"),
        ("!!set {a, b}", "tag 'tag:yaml.org,2002:set' is not supported"),
        ("!!python/name:os.system", "could not determine a constructor"),
        ("!!seq text", "expected a sequence node"),
    ],
)
def test_a_scalar_that_cannot_be_read_is_refused_with_its_line(value: str, words: str) -> None:
    error = refused(BASE + f"description: {value}\n")

    assert error.line == 6
    assert words in error.message


def test_two_documents_in_one_file_are_refused() -> None:
    error = refused(BASE + "---\n" + BASE)

    assert error.line == 6


def test_text_that_is_not_unicode_is_refused() -> None:
    error = refused(BASE + "description: \udcff\n")

    assert "not valid Unicode" in error.message or "unacceptable character" in error.message


# size


def test_a_file_over_one_mib_is_refused_before_it_is_read_further(tmp_path: Path) -> None:
    padding = "#" * 1023 + "\n"
    error = refused_file(tmp_path, BASE + padding * 1024)

    assert "at most 1024 KiB (1 MiB)" in error.message


def test_text_over_one_mib_is_refused_too() -> None:
    error = refused(BASE + "# " + "\N{SNOWMAN}" * (MIB // 3) + "\n")

    assert "at most 1024 KiB" in error.message


def test_a_file_just_under_one_mib_loads(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    keys = "".join(f"  - {{key: key-{n:07d}, id: id-{n:07d}}}\n" for n in range(26_800))
    path.write_text(BASE + "keys:\n" + keys, encoding="utf-8")
    assert MIB - 64 * 1024 < path.stat().st_size <= MIB

    assert len(load_policy(path).keys) == 26_800


# TOML and plain data

TOML_BASE = """\
version = 1
[limits]
api = "5/minute"
[[categories]]
name = "api"
match = "/api/**"
charge = ["api"]
"""


def test_toml_nested_twenty_thousand_deep_is_refused_with_the_file(tmp_path: Path) -> None:
    error = refused_file(
        tmp_path, TOML_BASE + "x = " + "[" * 20_000 + "]" * 20_000 + "\n", "deep.toml"
    )

    assert "nested deeper than 64 levels" in error.message


def test_toml_nested_deeper_than_64_levels_is_refused() -> None:
    error = refused(TOML_BASE.replace("version = 1", "version = " + "[" * 70 + "]" * 70), toml=True)

    assert "nested deeper than 64 levels" in error.message


def test_a_toml_five_thousand_digit_integer_is_refused(tmp_path: Path) -> None:
    error = refused_file(tmp_path, TOML_BASE + "x = " + "9" * 5_001 + "\n", "big.toml")

    assert "invalid TOML" in error.message


def test_a_toml_integer_over_a_hundred_digits_is_refused() -> None:
    error = refused(TOML_BASE + "x = " + "9" * 101 + "\n", toml=True)

    assert "more than 100 digits" in error.message


def test_toml_syntax_errors_name_the_line() -> None:
    error = refused(TOML_BASE + "x = [1,\ny = 2\n", toml=True)

    assert error.line == 9


def test_plain_data_that_contains_itself_is_refused() -> None:
    data: dict[str, Any] = yaml.safe_load(BASE)
    data["description"] = data

    with pytest.raises(PolicyError, match="nested deeper than 64 levels"):
        policy_from_dict(data)


# bodies


def test_a_body_template_over_64_kib_is_refused_at_load_naming_its_line() -> None:
    body = json.dumps({"help": "x" * (64 * 1024)})

    error = refused(BASE + f"responses:\n  rate_limited:\n    body: {body}\n")

    assert (error.line, error.field) == (8, "responses.rate_limited.body")
    assert "at most 64 KiB" in error.message


def test_a_body_template_with_too_many_placeholders_is_refused_at_load() -> None:
    body = json.dumps(["{path}"] * 50)

    error = refused(BASE + f"responses: {{rate_limited: {{body: {body}}}}}\n")

    assert "would leave each placeholder" in error.message


def test_a_body_number_that_json_has_not_is_refused() -> None:
    error = refused(BASE + "responses: {rate_limited: {body: {x: .nan}}}\n")

    assert (error.line, error.field) == (6, "responses.rate_limited.body.x")


@pytest.mark.parametrize("media_type", ["application/json\nX-Evil: 1", "text/pl\u00e4in"])
def test_a_content_type_no_server_can_send_is_refused(media_type: str) -> None:
    body = {"version": 1, **yaml.safe_load(BASE)}
    body["responses"] = {"rate_limited": {"content_type": media_type, "body": {"x": 1}}}

    with pytest.raises(PolicyError, match="cannot be sent as a Content-Type"):
        policy_from_dict(body)


def test_a_placeholder_with_a_format_spec_is_refused() -> None:
    error = refused(BASE + 'responses: {rate_limited: {body: {x: "{path:>999999999}"}}}\n')

    assert error.line == 6
    assert "no format spec" in error.message


@pytest.mark.parametrize(
    "body", ['{p: "{path}", q: "{path} and {path}", ip: "{ip}"}', '"{path}"', '["{path}"]']
)
def test_a_huge_path_renders_a_body_within_64_kib_that_is_still_json(body: str) -> None:
    policy = policy_from_text(BASE + f"responses: {{rate_limited: {{body: {body}}}}}\n")
    limiter = Limiter(policy, store=MemoryStore())
    path = "/api/" + '\u00e9\x01"' * 300_000

    decisions = [limiter.check(path=path, client_ip="192.0.2.1") for _ in range(6)]

    assert decisions[-1].status_code == 429
    rendered = decisions[-1].body
    assert rendered is not None
    assert len(rendered) <= 64 * 1024
    assert "\u2026" in json.dumps(json.loads(rendered), ensure_ascii=False)


def test_an_ordinary_path_is_rendered_whole() -> None:
    policy = policy_from_text(BASE + 'responses: {rate_limited: {body: {p: "{path}"}}}\n')
    limiter = Limiter(policy, store=MemoryStore())
    path = "/api/" + "a" * 2000

    decisions = [limiter.check(path=path) for _ in range(6)]

    assert json.loads(decisions[-1].body or b"") == {"p": path}


def test_a_docs_url_with_braces_is_text_in_problem_bodies() -> None:
    text = BASE + "docs_url: 'https://docs.example/{x'\nresponses: {style: problem}\n"
    limiter = Limiter(policy_from_text(text), store=MemoryStore())

    decisions = [limiter.check(path="/api/x") for _ in range(6)]

    assert json.loads(decisions[-1].body or b"")["type"] == "https://docs.example/{x"


# numbers that loaded and failed later


LOCKOUT = """\
lockouts:
  login: {match: POST /login, threshold: 3, window: 1 minute, block: 15 minutes, %s}
"""


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("max_block: 1 minute", "max_block (60s) is shorter than block (900s)"),
        ("escalation: .nan", "expected a finite number, got nan"),
        ("escalation: .inf", "expected a finite number, got inf"),
        ("max_block: .inf", "duration must be finite"),
        ("max_block: " + "9" * 400, "integer"),
        ("max_block: '" + "9" * 400 + " seconds'", "duration must be finite"),
    ],
)
def test_lockout_numbers_that_cannot_work_are_refused_with_their_line(
    setting: str, words: str
) -> None:
    error = refused(BASE + LOCKOUT % setting)

    assert error.line == 7
    assert words in error.message


def test_a_penalty_whose_max_block_is_shorter_than_its_block_is_refused() -> None:
    error = refused(BASE + "penalty: {rejections: 5, window: 60, block: 300, max_block: 60}\n")

    assert (error.line, error.field) == (6, "penalty.max_block")


# route patterns


def test_path_patterns_are_bounded_and_the_one_over_is_named() -> None:
    routes = "".join(f"      - /p{n}/*\n" for n in range(2049))

    error = refused(BASE + "  - name: many\n    match:\n" + routes)

    # /api/** is the first pattern: /p2047/* the 2,049th, on line 8 + 2047
    assert (error.line, error.field) == (8 + 2047, "categories[1].match[2047]")
    assert "at most 2048 path patterns" in error.message


def test_exact_paths_are_not_counted_as_patterns() -> None:
    routes = "".join(f"      - /exact/{n}\n" for n in range(5000))

    policy = policy_from_text(BASE + "  - name: many\n    match:\n" + routes)

    assert len(policy.categories[1].routes) == 5000


# what the compiler now leaves to the limit: a plan that names no value


def test_a_plan_that_does_not_name_a_concurrency_limit_has_its_default_cap() -> None:
    policy = policy_from_text(
        """\
        version: 1
        limits:
          api: {by: api_key, rate: 100/minute}
          slots: {by: api_key, concurrency: 1}
        plans:
          free: {limits: {api: 10/minute}}
        keys:
          - {key: k1, id: k1, plan: free}
        categories:
          - {name: api, match: /api/**, charge: [api, slots]}
        """.replace("        ", "")
    )
    limiter = Limiter(policy, store=MemoryStore())
    headers = {"X-API-Key": "k1"}

    first = limiter.check(path="/api/x", headers=headers, lease=True)
    second = limiter.check(path="/api/x", headers=headers, lease=True)

    assert (first.status_code, second.status_code) == (200, 429)
    assert (first.limit, second.detail) == (10, "too many concurrent requests")


# the examples read the same through both parsers


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_both_yaml_parsers_read_the_examples_alike(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ratekeeper.policy import source

    text = path.read_text(encoding="utf-8")
    native = source.parse_document(text)
    monkeypatch.setattr(source, "_Events", source._PurePythonEvents)
    python = source.parse_document(text)

    assert native == python == yaml.safe_load(text)
    assert _lines(native) == _lines(python)


def _lines(node: Any) -> Any:
    if isinstance(node, dict):
        return (node.line, node.lines, {key: _lines(value) for key, value in node.items()})  # type: ignore[attr-defined]
    if isinstance(node, list):
        return (node.line, node.lines, [_lines(value) for value in node])  # type: ignore[attr-defined]
    return None
