"""Decisions per second of the decision service, against the bare server stack.

Issue 12's target: ``POST /v1/check`` and ``GET /v1/authorize`` answer, with
the memory store and with Redis, at least 70% of the requests per second a
bare "return 200" endpoint answers on the same server stack (the ceiling),
measured with a load generator on loopback.

The servers (``bench/service_apps.py``, each in its own process on a free
loopback port, one uvicorn worker each, the same settings): ``ceiling`` (a
Starlette app whose routes return an empty 200, reading nothing),
``service memory`` and ``service redis`` (``ratekeeper.server.build_app`` on
a ``Service``: the memory store, or ``RedisStore`` on a ``redis-server`` the
bench starts itself on a free port, ``tests/support``'s ``RedisServer``, no
persistence; never the machine's own Redis). The policy
(``service_apps.POLICY``) is the built-in default policy's shape with limits
never reached: every request is a real decision, admitted, that charges the
store (checked: the key's remaining count went down by at least the number of
measured requests).

The requests (one per section, the same for every server):

- ``check``: ``POST /v1/check`` with a typical call, ``{"method": "GET",
  "path": "/api/servers", "headers": {X-API-Key, Accept, User-Agent},
  "client_ip": ...}``; the answer is the decision's JSON;
- ``authorize``: ``GET /v1/authorize`` as nginx's ``auth_request`` sends it
  (``X-Original-Method``, ``X-Original-URI``, the client's ``X-API-Key``);
  the answer is a 200 with the ``X-RateLimit-*`` fields.

Load: the harness's Python generator (``bench/harness/http_load.py``; wrk
sends no POST here, so both sections use the same generator),
``--connections`` keep-alive connections, one request in flight each. With
two or more CPUs the servers are pinned to the first, the load generator to
the second (``--no-pin``); redis-server is not pinned. Rounds interleaved in
rotating order (the harness): best and median req/s, the load generator's
p50/p99 (median over rounds), the server process's own CPU per request, and
the ratio to the ceiling (best to best, median to median).

Run from the repository root::

    python bench/bench_service.py            # full run, ~3 minutes
    python bench/bench_service.py --quick    # smoke run
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support

from tests.support.redis_servers import RedisServer, find_redis_server

from harness.cli import Settings, parser
from harness.http_load import Load, Server, get, measure_servers, start_server, wait_answer
from harness.machine import load_average
from harness.measure import Measurement
from harness.report import heading, ms_text, print_header, print_targets, table, verdict

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "service_apps.py"
PACKAGES = ("ratekeeper", "starlette", "uvicorn", "httptools", "uvloop", "redis", "hiredis")
SECTIONS = ("check", "authorize")
TARGET_RATIO = 0.70
CEILING = "ceiling"
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")

CLIENT_IP = "203.0.113.7"
USER_AGENT = "bench-service/1.0"


@dataclass(frozen=True)
class ServiceSettings(Settings):
    warmup: float
    connections: int
    server_cpu: int | None
    client_cpu: int | None

    def load(self, section: str, key: str, connections: int | None = None) -> Load:
        """The section's request, carrying API key ``key``."""
        common = {
            "seconds": self.seconds,
            "warmup": self.warmup,
            "connections": connections or self.connections,
            "generator": "python",
            "wrk": "wrk",
            "client_cpu": self.client_cpu,
        }
        if section == "check":
            call = {
                "method": "GET",
                "path": "/api/servers",
                "headers": {
                    "X-API-Key": key,
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
                "client_ip": CLIENT_IP,
            }
            return Load(
                path="/v1/check",
                headers={"Content-Type": "application/json"},
                method="POST",
                body=json.dumps(call).encode(),
                **common,  # type: ignore[arg-type]
            )
        return Load(
            path="/v1/authorize",
            headers={
                "X-Original-Method": "GET",
                "X-Original-URI": "/api/servers?page=2",
                "X-API-Key": key,
                "User-Agent": USER_AGENT,
            },
            **common,  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------- #
# The servers, and what they answer.                                           #
# --------------------------------------------------------------------------- #


def start_app(name: str, settings: ServiceSettings, *options: str) -> Server:
    pin = ["--cpu", str(settings.server_cpu)] if settings.server_cpu is not None else []

    def command(port: int) -> list[str]:
        return [sys.executable, str(APPS), *options, "--port", str(port), *pin]

    return start_server(name, command, ROOT)


def remaining(server: Server, load: Load, deadline: float, key_id: str) -> int | None:
    """Check the server's first answer to ``load``; the key's remaining count (the service's).

    The ceiling answers an empty 200; the service an admitted decision for
    ``key_id`` (``/v1/check``: its JSON; ``/v1/authorize``: the header fields).
    """
    status, headers, body = wait_answer(server, load, deadline)
    if status != 200:
        sys.exit(f"{server.name}: answered {status} {body[:300]!r}")
    if server.name == CEILING:
        return None
    if load.path == "/v1/authorize":
        missing = [name for name in RATE_HEADERS if name not in headers]
        if missing:
            sys.exit(f"{server.name}: no {', '.join(missing)} in {sorted(headers)}")
        return int(headers["x-ratelimit-remaining"])
    answer = json.loads(body)
    if not answer["allowed"] or answer["key_id"] != key_id or len(answer["limits"]) != 1:
        sys.exit(f"{server.name}: not the admitted decision for {key_id}: {answer}")
    return int(answer["limits"][0]["remaining"])


def charged(server: Server, probe: Load) -> int:
    """The key's remaining count now, by one more ``/v1/check`` (it charges 1 itself)."""
    status, _headers, body = get(server.port, probe)
    if status != 200:
        sys.exit(f"{server.name}: answered {status} {body[:300]!r}")
    return int(json.loads(body)["limits"][0]["remaining"])


# --------------------------------------------------------------------------- #
# Output.                                                                      #
# --------------------------------------------------------------------------- #


def ratio(measured: Measurement, ceiling: Measurement) -> tuple[float, float]:
    """(best / ceiling's best, median / ceiling's median)."""
    return measured.best / ceiling.best, measured.median / ceiling.median


def print_section(section: str, load: Load, results: dict[str, Measurement]) -> None:
    heading(f"{section}: {load.method} {load.path}, {load.connections} connections")
    top = results[CEILING]
    rows = []
    for name, m in results.items():
        best, median = ratio(m, top)
        rows.append(
            [
                name,
                f"{m.best:,.0f}",
                f"{m.median:,.0f}",
                ms_text(m.p50_ns),
                ms_text(m.p99_ns),
                "-" if name == CEILING else f"{best:.0%}",
                "-" if name == CEILING else f"{median:.0%}",
                f"{m.median_of('server_us'):.0f}",
                f"{100 * m.spread:.0f}%",
            ]
        )
    print(
        table(
            [
                "server",
                "req/s (best)",
                "(median)",
                "p50 ms",
                "p99 ms",
                "of ceiling (best)",
                "(median)",
                "server CPU us/req",
                "spread",
            ],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__, SECTIONS, seconds="measured load per server and round")
    options.add_argument("--warmup", type=float, help="load before each measured window")
    options.add_argument("--connections", type=int, default=32, help="keep-alive connections")
    options.add_argument("--no-pin", action="store_true", help="do not pin servers and client")
    options.add_argument("--no-redis", action="store_true", help="leave the Redis store out")
    options.add_argument("--redis-server", help="the redis-server binary (default: tests' choice)")
    args = options.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    settings = ServiceSettings.from_args(
        args,
        SECTIONS,
        seconds=(2.0, 4.0),
        rounds=(2, 5),
        warmup=args.warmup or 1.0,
        connections=args.connections,
        server_cpu=cpus[0] if pinned else None,
        client_cpu=cpus[1] if pinned else None,
    )
    with ExitStack() as stack:
        redis = None
        if not args.no_redis:
            binary = args.redis_server or find_redis_server()
            redis = stack.enter_context(RedisServer(binary))
        print_header(
            "ratekeeper decision service: decisions per second against the bare server stack",
            PACKAGES,
            [
                "servers: uvicorn, one worker each, access_log=False, the same settings "
                "(service_apps.py); the ceiling's routes return an empty 200",
                "stores: memory; "
                + (
                    f"Redis: {redis.binary} on {redis.url} (the bench's own, not pinned)"
                    if redis
                    else "no Redis (--no-redis)"
                ),
                "load generator: python (harness/http_load.py), "
                f"{settings.connections} keep-alive connections",
                "pinning: "
                + (
                    f"servers on CPU {settings.server_cpu}, load generator on CPU "
                    f"{settings.client_cpu}"
                    if pinned
                    else "none"
                ),
                f"method: {settings.rounds} rounds, each server {settings.warmup:g}s warm-up + "
                f"{settings.seconds:g}s measured per round, order rotating",
                f"load average at start: {load_average()}",
            ],
            settings.quick,
        )
        run(settings, redis, stack)
    print(f"load average at end: {load_average()}")


def run(settings: ServiceSettings, redis: RedisServer | None, stack: ExitStack) -> None:
    sys.path.insert(0, str(APPS.parent))
    import service_apps

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rk-bench-service-")))
    policy = tmp / "policy.yaml"
    policy.write_text(service_apps.POLICY)
    servers = [start_app(CEILING, settings, "ceiling")]
    stack.callback(lambda: [server.stop() for server in reversed(servers)])
    stores = {"service memory": "memory://"}
    if redis is not None:
        stores["service redis"] = redis.url
    for name, url in stores.items():
        servers.append(
            start_app(name, settings, "service", "--policy", str(policy), "--store", url)
        )
    key, key_id = service_apps.KEY, service_apps.KEY_ID
    probe = settings.load("check", key, connections=1)
    summary: list[str] = []
    for section in SECTIONS:
        if section not in settings.sections:
            continue
        load = settings.load(section, key)
        deadline = time.monotonic() + 30
        before = {server.name: remaining(server, load, deadline, key_id) for server in servers}
        print(flush=True)
        results = measure_servers(servers, load, settings.rounds)
        print_section(section, load, results)
        print()
        for server in servers[1:]:
            measured = sum(p.calls for p in results[server.name].passes)
            count = before[server.name]
            assert count is not None
            used = count - charged(server, probe)
            note = "" if used >= measured else "  FEWER than measured: not every request charged?"
            print(f"{server.name}: the key was charged {used:,} times, {measured:,} measured{note}")
        top = results[CEILING]
        for server in servers[1:]:
            best, _median = ratio(results[server.name], top)
            summary.append(
                f"{section} {server.name.removeprefix('service ')}: "
                f"{results[server.name].best:,.0f} req/s, {best:.0%} of the ceiling's "
                f"{top.best:,.0f} (target >= {TARGET_RATIO:.0%}): {verdict(best >= TARGET_RATIO)}"
            )
    print_targets(summary)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()
