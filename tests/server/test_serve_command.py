"""``ratekeeper serve`` as an operator runs it: a real process on a free loopback port.

``--smoke`` (the README's first command ends with it), SIGHUP reloading the
policy file, SIGTERM stopping gracefully, ``python -m ratekeeper``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
RATEKEEPER = [sys.executable, "-m", "ratekeeper"]
POLICY = """
version: 1
name: hangup
anonymous_plan: anonymous
limits:
  api: {{by: ip}}
plans:
  anonymous: {{limits: {{api: {limit}/minute}}}}
categories:
  - {{name: api, match: /**, charge: [api]}}
"""
CALL = {"path": "/things", "client_ip": "203.0.113.7"}


def run(args: list[str], cwd: Path, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own command, with arguments of the test)
        args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False, **options
    )


def smoke_answer(stdout: str) -> tuple[int, dict[str, object]]:
    found = re.search(r"^-> (\d{3}) (\{.*\})$", stdout, re.MULTILINE)
    assert found, stdout
    return int(found[1]), json.loads(found[2])


def test_smoke_answers_one_check_over_http_and_exits_0(tmp_path: Path) -> None:
    done = run([*RATEKEEPER, "serve", "--smoke", "--registry", "none"], tmp_path)
    assert done.returncode == 0, done.stderr
    status, answer = smoke_answer(done.stdout)
    assert status == 200
    assert (answer["allowed"], answer["plan"], answer["category"]) == (
        True,
        "anonymous",
        "requests",
    )
    assert answer["headers"] == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Reset": answer["headers"]["X-RateLimit-Reset"],  # type: ignore[index]
    }


def test_the_readme_first_command_ends_with_serve_smoke_and_it_exits_0(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.findall(r"```sh\n(.+?)\n```", readme)[0]
    assert first.endswith("&& ratekeeper serve --smoke")
    script = Path(sys.executable).parent / "ratekeeper"
    done = run([str(script), "serve", "--smoke"], tmp_path)  # the embedded default, as written
    assert done.returncode == 0, done.stderr
    assert smoke_answer(done.stdout)[0] == 200


def test_smoke_sends_the_check_token_it_was_given(tmp_path: Path) -> None:
    token = tmp_path / "check-token"
    token.write_text("a-check-token-of-the-test\n")
    args = [*RATEKEEPER, "serve", "--smoke", "--registry", "none", "--check-token-file", str(token)]
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stderr


def test_a_bad_policy_or_secret_stops_serve_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.format(limit=60).replace("/minute", "/minit"))
    done = run(
        [*RATEKEEPER, "serve", "--smoke", "--registry", "none", "--policy", str(bad)], tmp_path
    )
    assert done.returncode == 1
    assert f"{bad}:8: plans.anonymous.limits.api: " in done.stderr
    short = tmp_path / "secret"
    short.write_text("too short\n")
    args = [*RATEKEEPER, "serve", "--smoke", "--registry", "none", "--secret-file", str(short)]
    done = run(args, tmp_path)
    assert done.returncode == 1
    assert "at least 16 bytes" in done.stderr


def test_a_port_in_use_or_a_wrong_store_url_is_said_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run([*RATEKEEPER, "serve", "--registry", "none", "--port", str(port)], tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    done = run([*RATEKEEPER, "serve", "--registry", "none", "--store", "mem://"], tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: --store: unsupported Redis URL scheme 'mem'")


def test_python_m_ratekeeper_is_the_ratekeeper_command(tmp_path: Path) -> None:
    done = run([*RATEKEEPER, "--help"], tmp_path)
    assert done.returncode == 0
    assert "serve" in done.stdout
    assert done.stdout.startswith("Usage: ratekeeper ")


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Served:
    """``ratekeeper serve`` in a process of its own, its log in files."""

    def __init__(self, tmp_path: Path, port: int, policy: Path, *options: str) -> None:
        self.out, self.err = tmp_path / "stdout", tmp_path / "stderr"
        args = [*RATEKEEPER, "serve", "--policy", str(policy), "--port", str(port)]
        args += ["--registry", "none", *options]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(args, cwd=tmp_path, stdout=out, stderr=err)  # noqa: S603
        self.base = f"http://127.0.0.1:{port}"
        wait_for(self.healthy, "the service to listen")

    def healthy(self) -> bool:
        assert self.process.poll() is None, self.err.read_text()
        try:
            return httpx.get(self.base + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def limit(self) -> str:
        answer = httpx.post(self.base + "/v1/check", json=CALL, timeout=5).json()
        return str(answer["headers"]["X-RateLimit-Limit"])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def served(tmp_path: Path, unused_tcp_port: int) -> Iterator[tuple[Served, Path]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(limit=60))
    process = Served(tmp_path, unused_tcp_port, policy)
    try:
        yield process, policy
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def test_sighup_reloads_the_policy_file_and_refuses_a_bad_one(
    served: tuple[Served, Path],
) -> None:
    service, policy = served
    assert service.limit() == "60"
    assert f"listening on {service.base}" in service.out.read_text()

    policy.write_text(POLICY.format(limit=5))
    os.kill(service.process.pid, signal.SIGHUP)
    wait_for(lambda: service.limit() == "5", "the new policy")
    assert "policy reloaded by SIGHUP" in service.err.read_text()

    policy.write_text("version: 1\nname: [")
    os.kill(service.process.pid, signal.SIGHUP)
    wait_for(lambda: "refused" in service.err.read_text(), "the refusal in the log")
    assert f"policy reload by SIGHUP refused, the old policy stays: {policy}" in (
        service.err.read_text()
    )
    assert service.limit() == "5"

    assert service.stop() == 0  # SIGTERM: a graceful stop
    assert "Finished server process" in service.err.read_text()


def test_watch_reloads_the_policy_when_its_file_changes(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(limit=60))
    service = Served(tmp_path, unused_tcp_port, policy, "--watch")
    try:
        assert service.limit() == "60"
        assert "or a change of its files (--watch)" in service.out.read_text()
        policy.write_text(POLICY.format(limit=7))  # no signal: the watcher sees the file change
        wait_for(lambda: service.limit() == "7", "the changed policy", seconds=10)
        assert "policy reloaded by watch" in service.err.read_text()
        policy.write_text("version: 1\nname: [")  # refused, the policy in force stays
        wait_for(lambda: "refused" in service.err.read_text(), "the refusal in the log")
        assert service.limit() == "7"
        assert service.stop() == 0
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()
