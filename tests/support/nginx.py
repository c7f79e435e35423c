"""Real nginx for the proxy tests: the Debian package's binary, run by the fixtures.

Which binary (:func:`find_nginx`): ``$RATEKEEPER_NGINX`` (a path or a name on
``PATH``), else ``nginx`` on ``PATH``, else ``/usr/sbin/nginx`` (Debian's, not
on a user's ``PATH``). ``.ci/run`` installs it (``apt-get install nginx``);
without it the tests that need it skip, and fail when ``CI=true``
(:func:`require_nginx`).

:func:`nginx` runs one in the foreground (``daemon off``) and as one process
(``master_process off``: no workers, no switch to another user when run as
root), with a generated ``nginx.conf`` in a directory of its own that holds
its pid file and temp paths; its error log goes to the process's log. The
test gives the ``http {}`` part (a ``server`` listening on the given port).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from support.loopback import LoopbackProcess, require_binary

__all__ = ["ENV_VAR", "find_nginx", "nginx", "require_nginx"]

#: names the nginx binary to use
ENV_VAR = "RATEKEEPER_NGINX"
_DEBIAN = Path("/usr/sbin/nginx")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def find_nginx() -> Path | None:
    """The nginx binary to run, or ``None``."""
    asked = os.environ.get(ENV_VAR)
    if asked:
        found = shutil.which(asked)
        if found is None:
            raise FileNotFoundError(f"${ENV_VAR}={asked!r} is not an executable")
        return Path(found)
    found = shutil.which("nginx")
    if found is not None:
        return Path(found)
    return _DEBIAN if os.access(_DEBIAN, os.X_OK) else None


def require_nginx() -> Path:
    """The nginx binary; skips the test without one, fails it in CI."""
    return require_binary(find_nginx(), "nginx", "apt-get install -y nginx")


def _main_conf(directory: Path) -> str:
    temp = "\n".join(f"    {name}_temp_path {directory / name};" for name in _TEMP_PATHS)
    return f"""\
daemon off;
master_process off;
pid {directory / "nginx.pid"};
error_log stderr notice;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
{temp}
    include {directory / "site.conf"};
}}
"""


def nginx(binary: Path, site: Callable[[int], str], directory: Path) -> LoopbackProcess:
    """nginx serving ``site(port)`` (``http {}`` directives) on a free loopback port."""

    def command(port: int, directory: Path) -> list[str]:
        (directory / "site.conf").write_text(site(port), encoding="utf-8")
        conf = directory / "nginx.conf"
        conf.write_text(_main_conf(directory), encoding="utf-8")
        return [str(binary), "-p", str(directory), "-c", str(conf), "-e", "stderr"]

    return LoopbackProcess("nginx", command, directory)
