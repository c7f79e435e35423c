"""Facts about the machine a run measured: revision, CPU, versions, load, steal.

A number is only worth what the reader knows about where it came from: the
commit (marked when src/ had uncommitted changes), the CPU and how many, the
interpreter, the versions of every library compared, and how busy the machine
was (load average, CPU stolen by the hypervisor on a shared VM).
"""

from __future__ import annotations

import os
import platform
import subprocess  # only to name the git revision measured
from collections.abc import Sequence
from contextlib import suppress
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _git(*args: str) -> str:
    command = ["git", *args]  # git from PATH, fixed arguments
    return subprocess.run(  # noqa: S603
        command, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def revision() -> str:
    """The commit the benchmarked source is at, marked when the tree has changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"{head} (src/ has uncommitted changes)" if dirty else head


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    model = platform.processor() or "unknown"
    with suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            model,
        )
    return model


def machine(packages: Sequence[str]) -> str:
    """One line: revision, interpreter, OS, CPU, CPU count, and ``packages``' versions."""
    versions = ", ".join(f"{name} {version(name)}" for name in packages)
    return (
        f"ratekeeper at {revision()}; {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{cpu_model()}, nproc={os.cpu_count()}; {versions}"
    )


def load_average() -> str:
    with suppress(OSError):
        return ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return "unknown"


def cpu_times() -> tuple[float, float]:
    """Busy (everything but idle and iowait, steal included) and stolen CPU
    seconds of the whole machine so far, from ``/proc/stat``."""
    with open("/proc/stat") as stat:
        ticks = [int(n) for n in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    del idle, iowait
    return (user + nice + system + irq + softirq + steal) / CLK_TCK, steal / CLK_TCK
