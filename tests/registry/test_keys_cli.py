"""``ratekeeper keys ...``: the key once on stdout, nothing else there; errors exit 1 on stderr."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ratekeeper.cli import main
from ratekeeper.policy import hash_api_key, load_policy
from ratekeeper.registry import DEFAULT_REGISTRY, Registry

PRO_POLICY = textwrap.dedent("""\
    version: 1
    name: shop
    limits:
      api: {by: api_key}
      slots: {by: api_key, concurrency: 2}
    plans:
      free: {limits: {api: 5/minute}}
      pro: {limits: {api: 50/minute}}
    categories:
      - {name: api, match: /api/**, charge: [api, slots]}
    """)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.sqlite3'}"


@pytest.fixture
def policy_file(tmp_path: Path) -> str:
    path = tmp_path / "shop.yaml"
    path.write_text(PRO_POLICY, "utf-8")
    return str(path)


def keys(*args: str) -> Result:
    return CliRunner().invoke(main, ["keys", *args], catch_exceptions=False)


def test_create_prints_the_key_once_on_stdout_and_nothing_else(url: str, policy_file: str) -> None:
    result = keys(
        "create", "--plan", "pro", "--name", "acme", "--id", "acme-1", "--user", "u-7",
        "--limit", "api=100/minute", "--limit", "slots=5",
        "--registry", url, "--policy", policy_file,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    raw = result.stdout.strip()
    assert result.stdout == raw + "\n"
    assert raw.startswith("rk_")
    assert len(raw) == 46
    assert result.stderr == ("created key acme-1 (plan pro); it is shown this once: store it now\n")
    registry = Registry.open(url)
    try:
        (record,) = registry.list_keys()
        assert (record.id, record.plan, record.name, record.user) == (
            "acme-1",
            "pro",
            "acme",
            "u-7",
        )
        assert record.limits == {"api": "100/minute", "slots": 5}
        (entry,) = registry.entries(load_policy(policy_file))
        assert entry.sha256 == hash_api_key(raw)
        (event,) = registry.audit()
        assert event.kind == "key.create"
        assert event.actor.startswith("cli")
    finally:
        registry.close()


def test_without_policy_the_built_in_one_is_used(url: str) -> None:
    result = keys("create", "--plan", "default", "--name", "acme", "--registry", url)
    assert result.exit_code == 0
    refused = keys("create", "--plan", "pro", "--registry", url)
    assert refused.exit_code == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "Error: policy 'ratekeeper-default' has no plan 'pro' (its plans: anonymous, default)\n"
    )


def test_the_default_registry_is_a_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = keys("create", "--plan", "default")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "ratekeeper.sqlite3").is_file()
    assert len(keys("list").stdout.splitlines()) == 2
    assert DEFAULT_REGISTRY == "sqlite:///./ratekeeper.sqlite3"


def test_list_shows_every_field_but_the_key(url: str, policy_file: str) -> None:
    created = keys(
        "create",
        "--plan",
        "free",
        "--name",
        "acme",
        "--id",
        "a1",
        "--limit",
        "api=unlimited",
        "--registry",
        url,
        "--policy",
        policy_file,
    )
    keys("create", "--plan", "pro", "--id", "b2", "--registry", url, "--policy", policy_file)
    keys("revoke", "b2", "--registry", url)
    raw = created.stdout.strip()
    result = keys("list", "--registry", url)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "PLAN", "NAME", "USER", "LIMITS", "CREATED", "REVOKED"]
    assert lines[1].split()[:5] == ["a1", "free", "acme", "-", "api=unlimited"]
    assert lines[1].split()[6] == "-"
    assert len(lines) == 2  # b2 is revoked
    every = keys("list", "--all", "--registry", url).stdout.splitlines()
    assert [line.split()[0] for line in every[1:]] == ["a1", "b2"]
    assert every[2].split()[6].endswith("Z")
    assert raw not in result.stdout + "".join(every)
    assert hash_api_key(raw) not in result.stdout + "".join(every)


def test_revoke_and_set_plan(url: str, policy_file: str) -> None:
    keys("create", "--plan", "free", "--id", "a1", "--registry", url, "--policy", policy_file)
    moved = keys("set-plan", "a1", "pro", "--registry", url, "--policy", policy_file)
    assert (moved.exit_code, moved.stdout) == (0, "key a1: plan pro (was free)\n")
    revoked = keys("revoke", "a1", "--registry", url)
    assert (revoked.exit_code, revoked.stdout) == (0, "revoked key a1\n")
    registry = Registry.open(url)
    try:
        assert [event.kind for event in registry.audit()] == [
            "key.create", "key.plan", "key.revoke"
        ]  # fmt: skip
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["revoke", "ghost"], "Error: no key with id 'ghost' in the registry\n"),
        (["set-plan", "a1", "gold"],
         "Error: policy 'shop' has no plan 'gold' (its plans: free, pro)\n"),
        (["create", "--plan", "free", "--id", "a1"], "Error: a key with id 'a1' exists already\n"),
        (["create", "--plan", "free", "--limit", "api"],
         "Error: --limit takes NAME=VALUE (api=100/minute, slots=5, api=unlimited), got 'api'\n"),
        (["create", "--plan", "free", "--limit", "api=fast"], "Error: limits.api: "),
        (["create", "--plan", "free", "--limit", "api=1/minute", "--limit", "api=2/minute"],
         "Error: --limit api is given twice\n"),
        (["create", "--name", "no-plan"], "Error: Missing option '--plan'."),
        (["create", "--plan", "free", "--policy", "/nonexistent/policy.yaml"],
         "Error: /nonexistent/policy.yaml"),
    ],
)  # fmt: skip
def test_errors_exit_1_with_the_reason_on_stderr_and_change_nothing(
    url: str, policy_file: str, args: list[str], message: str
) -> None:
    keys("create", "--plan", "free", "--id", "a1", "--registry", url, "--policy", policy_file)
    if "--policy" not in args and args[0] != "revoke":
        args = [*args, "--policy", policy_file]
    result = keys(*args, "--registry", url)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert message in result.stderr
    registry = Registry.open(url)
    try:
        assert [record.id for record in registry.list_keys()] == ["a1"]
        assert [record.plan for record in registry.list_keys()] == ["free"]
        assert len(registry.audit()) == 1
    finally:
        registry.close()


def test_a_registry_that_cannot_be_opened_is_exit_1(tmp_path: Path) -> None:
    result = keys("list", "--registry", f"sqlite:///{tmp_path}/no/such/dir/keys.sqlite3")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot open the registry sqlite:///")
    bad = keys("list", "--registry", "mysql://db/keys")
    assert (bad.exit_code, bad.stderr) == (
        1,
        "Error: unsupported registry URL 'mysql://db/keys': use sqlite:///path.sqlite3 or "
        "postgresql://user@host/db\n",
    )
