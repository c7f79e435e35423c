"""The layering rules of docs/architecture.md hold, and breaking one fails the test command.

``lint-imports`` (import-linter, in the test command) checks the contracts of
pyproject.toml. Here it runs on a copy of the package with one forbidden
import added, and must fail naming the contract that import breaks: a
contract that cannot fail checks nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = "Layers: cli, faces, registry, public limiters"
ENGINE = "The engine imports no http, no face, no public limiter"
FRAMEWORKS = "Below the faces, no web framework or HTTP client is imported"
DATABASES = "Below the registry, no database library is imported"
CLIENT = "The client imports nothing of ratekeeper but itself"
GRPC = "gRPC and Envoy's stubs are imported only by the service's envoy part"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on ``project`` (a pyproject.toml and ``src/ratekeeper``)."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--no-cache", "--no-logo"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "src" / "ratekeeper",
        tmp_path / "src" / "ratekeeper",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_contract(project: Path) -> None:
    result = lint_imports(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(verdicts(result.stdout).values()) == {"KEPT"}
    assert "6 kept, 0 broken" in result.stdout


def verdicts(report: str) -> dict[str, str]:
    """Each contract's verdict in a ``lint-imports`` report: ``"KEPT"`` or ``"BROKEN"``."""
    summary = " ".join(report.split())  # long contract names wrap
    found = {}
    for name in (LAYERS, ENGINE, FRAMEWORKS, DATABASES, CLIENT, GRPC):
        after = summary[summary.index(name) :]
        kept, broken = after.find(" KEPT"), after.find(" BROKEN")
        found[name] = "BROKEN" if broken >= 0 and (kept < 0 or broken < kept) else "KEPT"
    return found


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        pytest.param("engine/_flow.py", "from ..http import answers", {LAYERS, ENGINE}, id="http"),
        pytest.param("stores/base.py", "from ..policy import model", {LAYERS}, id="stores"),
        # the engine imports policy: a policy importing the public limiter is the engine's too
        pytest.param(
            "policy/model.py", "from ..limiter import Limiter", {LAYERS, ENGINE}, id="policy"
        ),
        pytest.param("identity.py", "import starlette", {FRAMEWORKS}, id="framework"),
        pytest.param("http/answers.py", "from ..cli import main", {LAYERS}, id="answers"),
        pytest.param("stores/base.py", "import sqlalchemy", {DATABASES}, id="database"),
        pytest.param("engine/_flow.py", "from .. import registry", {LAYERS}, id="registry"),
        # analytics sit below the faces that plug them in, above the registry they write to
        pytest.param("analytics/_words.py", "from ..server import app", {LAYERS}, id="analytics"),
        pytest.param("registry/_usage.py", "from .. import analytics", {LAYERS}, id="usage"),
        # below it in the layers, yet forbidden: the client reads header fields on its own
        pytest.param("client/_fields.py", "from .. import rates", {CLIENT}, id="client"),
        # Envoy's service is the server's envoy part: no other face speaks gRPC
        pytest.param("gateway/_proxy.py", "import grpc", {GRPC}, id="grpc"),
        pytest.param("policy/envoy.py", "from envoy.service import ratelimit", {GRPC}, id="stubs"),
    ],
)
def test_a_forbidden_import_fails_the_check(
    project: Path, module: str, line: str, broken: set[str]
) -> None:
    source = project / "src" / "ratekeeper" / module
    source.write_text(source.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", "utf-8")

    result = lint_imports(project)

    assert result.returncode != 0
    found = verdicts(result.stdout)
    assert {name for name, verdict in found.items() if verdict == "BROKEN"} >= broken
    assert "is not allowed to import" in result.stdout
