"""``ratekeeper serve`` killed with SIGTERM mid-traffic writes every count before it exits.

A real process on a free loopback port with a SQLite registry; four clients
call ``/v1/check`` as fast as they can; SIGTERM arrives while they do. Every
answer a client got is a decision, and every decision is in the registry
once the process has exited: the recorder's last flush runs at shutdown.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from ratekeeper.registry import Registry

POLICY = """\
version: 1
name: busy
anonymous_plan: anonymous
limits:
  api: {by: ip}
plans:
  anonymous: {limits: {api: 20/minute}}
categories:
  - {name: api, match: /**, charge: [api]}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_mid_traffic_loses_no_count(tmp_path: Path) -> None:
    policy = tmp_path / "busy.yaml"
    policy.write_text(POLICY)
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RATEKEEPER_ADMIN_TOKEN", None)
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own command
        [sys.executable, "-m", "ratekeeper", "serve", "--policy", str(policy), "--registry", url,
         "--store", "memory://", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.05)

        answered: list[int] = []
        lock = threading.Lock()

        def client(index: int) -> None:
            call = {"path": "/things", "client_ip": f"198.51.100.{index}"}
            mine = []
            with httpx.Client(base_url=base, timeout=10) as http:
                while True:
                    try:
                        mine.append(http.post("/v1/check", json=call).status_code)
                    except httpx.TransportError:
                        break
            with lock:
                answered.extend(mine)

        clients = [threading.Thread(target=client, args=(index,)) for index in range(4)]
        for thread in clients:
            thread.start()
        time.sleep(1.5)
        process.send_signal(signal.SIGTERM)
        for thread in clients:
            thread.join(30)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 0, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert set(answered) == {200, 429}, f"both allowed and refused: {len(answered)} answers"
    registry = Registry.open(url)
    try:
        now = datetime.now(UTC)
        (total,) = [
            sum(p.requests for p in registry.usage_series(start=now - timedelta(minutes=10),
                                                          end=now + timedelta(minutes=1)))
        ]  # fmt: skip
        refused = sum(
            p.refused_rate
            for p in registry.usage_series(
                start=now - timedelta(minutes=10), end=now + timedelta(minutes=1)
            )
        )
    finally:
        registry.close()
    assert len(answered) > 80  # the limit of the four addresses, and more
    assert total == len(answered)
    assert refused == answered.count(429)
