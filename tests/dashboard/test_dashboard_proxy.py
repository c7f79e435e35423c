"""``ratekeeper proxy --admin-port`` serves the dashboard on the admin port, never on the API's.

The real command in a process of its own: the gateway's port sends every
path upstream (``/dashboard`` too: no path of the API is shadowed), the
admin port serves the service's app, dashboard included, behind the same
admin token.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
from dashboard_support import POLICY, TOKEN, is_login_form

from support.loopback import LoopbackProcess, free_port


def test_the_proxy_serves_the_dashboard_on_its_admin_port(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY, "utf-8")
    admin_port = free_port()

    def command(port: int, directory: Path) -> list[str]:
        return [
            sys.executable, "-m", "ratekeeper", "proxy", "--policy", str(policy),
            "--upstream", "http://127.0.0.1:9", "--timeout", "2", "--registry", "none",
            "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
        ]  # fmt: skip

    proxy = LoopbackProcess(
        "proxy", command, tmp_path / "proxy", env={"RATEKEEPER_ADMIN_TOKEN": TOKEN}
    )
    with proxy, httpx.Client(base_url=f"http://127.0.0.1:{admin_port}", timeout=10) as admin:
        deadline = time.monotonic() + 15
        while True:
            try:
                login = admin.get("/dashboard")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, proxy.log_tail()
                time.sleep(0.05)
        assert login.status_code == 200
        assert is_login_form(login.text)
        overview = admin.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
        assert overview.status_code == 200
        assert "<h1>Overview</h1>" in overview.text
        logged_in = admin.post("/dashboard/login", data={"token": TOKEN})
        assert logged_in.status_code == 303
        assert "<h1>Keys</h1>" in admin.get("/dashboard/keys").text
        upstream = httpx.get(f"{proxy.url}/dashboard", timeout=10)
        assert upstream.status_code == 502  # the API's own path, sent to its (absent) upstream
