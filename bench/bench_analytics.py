"""Decision throughput with usage analytics and metrics on, against both off.

Issue 13's target: with the usage recorder (a decision hook counting in
memory, flushed every second into the registry) and the Prometheus metrics
on, the decision service (``POST /v1/check``) and the ASGI middleware
(``GET /api/servers`` through ``RateLimitMiddleware``) answer at least 90% of
the requests per second they answer with both off, measured in the same run.

The servers (``bench/analytics_apps.py``, each in its own process on a free
loopback port, one uvicorn worker each, the same settings): ``service-off``
and ``service-on`` (a ``Service`` with a SQLite registry in a temporary
directory: ``analytics=False, metrics=False`` against the defaults),
``asgi-off`` and ``asgi-on`` (a Starlette app answering 200 behind the
middleware on the memory store: nothing against ``metrics=RateLimitMetrics(),
usage_registry=...``). The policy is ``service_apps.POLICY`` (limits never
reached: every request is a real decision, admitted). Each section measures
its pair interleaved, rounds in rotating order (the harness); with two or
more CPUs the servers run on the first, the load generator on the second.

After the measurement the "on" servers are stopped with SIGTERM and their
registry is read: every request they answered must have been counted (the
measured ones and the warm-up: at least the measured number).

Run from the repository root::

    python bench/bench_analytics.py            # full run, ~2 minutes
    python bench/bench_analytics.py --quick    # smoke run
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from harness.cli import Settings, parser
from harness.http_load import Load, Server, measure_servers, start_server, wait_answer
from harness.machine import load_average
from harness.measure import Measurement
from harness.report import heading, ms_text, print_header, print_targets, table, verdict

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "analytics_apps.py"
PACKAGES = ("ratekeeper", "starlette", "uvicorn", "sqlalchemy", "prometheus-client")
SECTIONS = ("service", "asgi")
TARGET_RATIO = 0.90
CLIENT_IP = "203.0.113.7"


@dataclass(frozen=True)
class AnalyticsSettings(Settings):
    warmup: float
    connections: int
    server_cpu: int | None
    client_cpu: int | None

    def load(self, section: str, key: str) -> Load:
        common = {
            "seconds": self.seconds, "warmup": self.warmup, "connections": self.connections,
            "generator": "python", "wrk": "wrk", "client_cpu": self.client_cpu,
        }  # fmt: skip
        if section == "service":
            call = {"method": "GET", "path": "/api/servers", "headers": {"X-API-Key": key},
                    "client_ip": CLIENT_IP}  # fmt: skip
            return Load(
                path="/v1/check", headers={"Content-Type": "application/json"}, method="POST",
                body=json.dumps(call).encode(), **common,  # type: ignore[arg-type]
            )  # fmt: skip
        return Load(path="/api/servers", headers={"X-API-Key": key}, **common)  # type: ignore[arg-type]


def start_app(variant: str, settings: AnalyticsSettings, policy: Path, registry: str) -> Server:
    pin = ["--cpu", str(settings.server_cpu)] if settings.server_cpu is not None else []

    def command(port: int) -> list[str]:
        return [sys.executable, str(APPS), variant, "--port", str(port), "--policy", str(policy),
                "--registry", registry, *pin]  # fmt: skip

    return start_server(variant, command, ROOT)


def counted(registry_url: str) -> int:
    """Every decision the registry at ``registry_url`` holds (its minute rows)."""
    from ratekeeper.registry import Registry

    registry = Registry.open(registry_url)
    try:
        now = datetime.now(UTC)
        points = registry.usage_series(
            start=now - timedelta(hours=2), end=now + timedelta(minutes=1)
        )
        return sum(point.requests for point in points)
    finally:
        registry.close()


def print_section(section: str, load: Load, results: dict[str, Measurement], off: str) -> None:
    heading(f"{section}: {load.method} {load.path}, {load.connections} connections")
    base = results[off]
    rows = []
    for name, m in results.items():
        rows.append([
            name, f"{m.best:,.0f}", f"{m.median:,.0f}", ms_text(m.p50_ns), ms_text(m.p99_ns),
            "-" if name == off else f"{m.best / base.best:.0%}",
            "-" if name == off else f"{m.median / base.median:.0%}",
            f"{m.median_of('server_us'):.0f}", f"{100 * m.spread:.0f}%",
        ])  # fmt: skip
    print(table(["server", "req/s (best)", "(median)", "p50 ms", "p99 ms", "of off (best)",
                 "(median)", "server CPU us/req", "spread"], rows))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__, SECTIONS, seconds="measured load per server and round")
    options.add_argument("--warmup", type=float, help="load before each measured window")
    options.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    options.add_argument("--no-pin", action="store_true", help="do not pin servers and client")
    args = options.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    settings = AnalyticsSettings.from_args(
        args, SECTIONS, seconds=(2.0, 4.0), rounds=(2, 5), warmup=args.warmup or 1.0,
        connections=args.connections, server_cpu=cpus[0] if pinned else None,
        client_cpu=cpus[1] if pinned else None,
    )  # fmt: skip
    print_header(
        "ratekeeper usage analytics and metrics: decisions per second, on against off",
        PACKAGES,
        [
            "servers: uvicorn, one worker each, access_log=False (analytics_apps.py); "
            "registries: SQLite in a temporary directory",
            f"load generator: python (harness/http_load.py), {settings.connections} "
            "keep-alive connections",
            "pinning: " + (f"servers on CPU {settings.server_cpu}, load generator on CPU "
                           f"{settings.client_cpu}" if pinned else "none"),
            f"method: {settings.rounds} rounds, each server {settings.warmup:g}s warm-up + "
            f"{settings.seconds:g}s measured per round, order rotating",
            f"load average at start: {load_average()}",
        ],
        settings.quick,
    )  # fmt: skip
    with ExitStack() as stack:
        run(settings, stack)
    print(f"load average at end: {load_average()}")


def run(settings: AnalyticsSettings, stack: ExitStack) -> None:
    sys.path.insert(0, str(APPS.parent))
    import service_apps

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rk-bench-analytics-")))
    policy = tmp / "policy.yaml"
    policy.write_text(service_apps.POLICY)
    summary: list[str] = []
    for section in SECTIONS:
        if section not in settings.sections:
            continue
        load = settings.load(section, service_apps.KEY)
        registries = {
            v: f"sqlite:///{tmp / f'{v}.sqlite3'}" for v in (f"{section}-off", f"{section}-on")
        }
        servers = [start_app(v, settings, policy, url) for v, url in registries.items()]
        try:
            for server in servers:
                status, _headers, body = wait_answer(server, load, _deadline())
                if status != 200:
                    sys.exit(f"{server.name}: answered {status} {body[:300]!r}")
            print(flush=True)
            results = measure_servers(servers, load, settings.rounds)
        finally:
            for server in servers:
                server.stop()  # SIGTERM: the "on" server flushes its last counts
        off, on = servers[0].name, servers[1].name
        print_section(section, load, results, off)
        measured = sum(p.calls for p in results[on].passes)
        written = counted(registries[on])
        note = "" if written >= measured else "  FEWER than measured: counts lost?"
        print(f"\n{on}: {written:,} decisions in its registry, {measured:,} measured{note}")
        assert counted(registries[off]) == 0, "analytics off wrote counts"
        best = results[on].best / results[off].best
        median = results[on].median / results[off].median
        summary.append(
            f"{section}: analytics+metrics on {results[on].best:,.0f} req/s, {best:.0%} of off's "
            f"{results[off].best:,.0f} (median {median:.0%}; target >= {TARGET_RATIO:.0%}): "
            f"{verdict(best >= TARGET_RATIO)}"
        )
    print_targets(summary)


def _deadline() -> float:
    import time

    return time.monotonic() + 30


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()
