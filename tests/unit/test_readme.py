"""The README's set-up commands are the ones CI runs and the CLI accepts."""

from __future__ import annotations

import re
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
    cli_part = command.split("&& ratekeeper ", 1)[1]
    args = [part.strip("'") for part in re.findall(r"'[^']*'|\S+", cli_part)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("200 allowed") == 3
    assert "X-RateLimit-Remaining: 17" in result.output
