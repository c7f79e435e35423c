"""The gateway's one exception to "faces do not import each other" stays one import.

pyproject.toml lets ``ratekeeper.gateway._build`` import the ASGI middleware
(``ignore_imports``); any other import of a face by the gateway, or of the
gateway by a face, still breaks the layers contract (docs/architecture.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--no-cache", "--no-logo"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "line"),
    [
        pytest.param("gateway/_proxy.py", "from ..integrations import wsgi", id="gateway-wsgi"),
        pytest.param("gateway/_proxy.py", "from ..integrations import asgi", id="proxy-asgi"),
        pytest.param("integrations/wsgi.py", "from .. import gateway", id="wsgi-gateway"),
    ],
)
def test_any_other_import_between_the_gateway_and_a_face_breaks_the_layers(
    tmp_path: Path, module: str, line: str
) -> None:
    shutil.copytree(ROOT / "src" / "ratekeeper", tmp_path / "src" / "ratekeeper",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0  # as shipped
    source = tmp_path / "src" / "ratekeeper" / module
    source.write_text(source.read_text() + f"\n{line}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "Layers: cli, faces" in " ".join(result.stdout.split())
    assert "BROKEN" in result.stdout
