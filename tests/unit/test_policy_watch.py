"""``serve --watch``: what counts as a change of the policy's files, and the reload it makes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ratekeeper.server._watch import fingerprint, watch_policy


def touch(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_directory_changes_with_its_configs_only(tmp_path: Path) -> None:
    touch(tmp_path / "a.yaml", "domain: a", 10**18)
    first = fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("not a config")
    unchanged = fingerprint(tmp_path)
    touch(tmp_path / "b.yml", "domain: b", 10**18)
    added = fingerprint(tmp_path)
    touch(tmp_path / "a.yaml", "domain: a", 10**18 + 1)
    touched = fingerprint(tmp_path)

    assert first == unchanged
    assert len({first, added, touched}) == 3
    assert fingerprint(tmp_path / "gone.yaml") is None


class Reloads:
    def __init__(self, path: Path) -> None:
        self.policy_path = path
        self.actors: list[str] = []

    async def reload_policy(self, *, actor: str, path: str | None = None) -> list[str]:
        self.actors.append(actor)
        return []


async def test_a_change_reloads_once_and_no_change_reloads_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    touch(policy, "one", 10**18)
    service = Reloads(policy)
    watching = asyncio.create_task(watch_policy(service, interval=0.01))
    await asyncio.sleep(0.05)
    quiet = list(service.actors)
    touch(policy, "two", 10**18 + 1)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if service.actors:
            break
    await asyncio.sleep(0.05)
    watching.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watching

    assert quiet == []
    assert service.actors == ["watch"]
