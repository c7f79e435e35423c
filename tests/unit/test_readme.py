"""The README's set-up commands are the ones CI runs and the CLI accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from ratekeeper.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```sh\n(.+?)\n```", readme)


def test_readme_has_exactly_two_setup_commands() -> None:
    assert len(_commands()) == 2


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _commands()[1] in ci_lines


def test_readme_main_job_decides_requests_against_the_example() -> None:
    command = _commands()[0]
    cli_part = command.split("&& ratekeeper ", 1)[1].split(" && ", 1)[0]  # the check
    args = [part.strip("'") for part in re.findall(r"'[^']*'|\S+", cli_part)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("200 allowed") == 3
    assert "X-RateLimit-Remaining: 17" in result.output


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    pins = {}
    for line in lines:
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[_normalized(name)] = version
    return pins


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dev_requirements() -> set[str]:
    """Every distribution the dev extra names, through ``ratekeeper[...]`` extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    names: set[str] = set()
    todo, seen = ["dev"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for requirement in extras[extra]:
            name = re.match(r"[A-Za-z0-9_.-]+", requirement)
            assert name is not None
            inner = re.search(r"\[(.+)\]", requirement)
            if name[0] == "ratekeeper" and inner:
                todo.extend(part for part in inner[1].split(",") if part not in seen)
            else:
                names.add(_normalized(name[0]))
    return names | {_normalized(dependency.split(">")[0]) for dependency in project["dependencies"]}


def test_the_test_command_installs_from_the_lock() -> None:
    """An upstream release once broke a fresh checkout (redis-py 8.2 and mypy --strict)."""
    assert "pip install -c constraints.txt -e '.[dev]'" in _commands()[1]


def test_the_lock_pins_every_dev_dependency_exactly() -> None:
    pins = _pins()
    missing = sorted(name for name in _dev_requirements() if name not in pins)
    assert missing == [], "run scripts/refresh-lock: constraints.txt lacks " + ", ".join(missing)
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version) for version in pins.values())
