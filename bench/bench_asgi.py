"""The ASGI middleware's overhead over the bare app, and slowapi's, in one run.

Issue 4's target: ``ratekeeper.integrations.asgi.RateLimitMiddleware`` with the
memory store costs at most 15% of the throughput of a trivial endpoint,
measured with a load generator on loopback; slowapi on the same app is
measured the same way beside it.

Every variant (``bench/asgi_apps.py``) serves ``GET /api/ping`` -> a 15-byte
JSON body from a real uvicorn (one worker, ``access_log=False``, the same
options for all) in its own process on a free loopback port. The limited
variants use a limit that is never reached (1,000,000,000/minute): every
request is allowed and carries ``X-RateLimit-Limit/Remaining/Reset``, and the
run is checked afterwards to have answered 200 only. All requests carry
``X-API-Key: demo-pro`` (only the scanner-policy variant reads it).

Load (``bench/harness/http_load.py``): ``wrk`` (C, one thread, keep-alive
connections) when it is on PATH, else a Python generator (asyncio protocols on
raw keep-alive HTTP/1.1 sockets, one request in flight per connection, in its
own process, uvloop if installed). With two or more CPUs the servers are
pinned to CPU 0 and the load generator to CPU 1 (``--no-pin`` to let the
scheduler place them).

Method: the harness's rounds (``bench/harness``), on servers: all servers are
started once and stay up. A round loads every variant in turn (order rotating
from round to round, so noise from the machine falls on every variant alike):
``--warmup`` seconds of load, then ``--seconds`` of measured load. Throughput
is the best round (noise only ever removes requests), the median beside it;
p50/p99 are the load generator's, median over rounds. Server CPU per request
is the server process's user+system time over the measured window
(``/proc/<pid>/stat``) divided by the requests: a second view of the cost that
is less sensitive to how busy the machine was. The overhead of a variant is
``1 - its req/s / the bare app's req/s`` (best against best); the paired
figure is the median over rounds of the same ratio taken within each round.
The in-process section times the apps called directly in the same rotating
rounds, in CPU time of the bench's own process.

Run from the repository root::

    python bench/bench_asgi.py            # full run, ~4-5 minutes
    python bench/bench_asgi.py --quick    # smoke run, under a minute
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.cli import Settings, parser
from harness.http_load import (
    Load,
    Server,
    measure_servers,
    new_loop,
    pin,
    run_load,
    start_server,
    wait_answer,
)
from harness.machine import load_average, version
from harness.measure import Measurement, Pass, interleave
from harness.report import heading, ms_text, print_header, print_targets, table, verdict

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ratekeeper", "uvicorn", "starlette", "fastapi", "slowapi", "limits")
SECTIONS = ("inprocess", "server")
APPS = Path(__file__).resolve().parent / "asgi_apps.py"
PATH = "/api/ping"
API_KEY = "demo-pro"
TARGET_OVERHEAD = 0.15  # ratekeeper's middleware: at most 15% of the bare app's req/s
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
FRAMEWORKS = ("starlette", "fastapi")
ALL_VARIANTS = (
    "starlette",
    "starlette+headers",
    "starlette+ratekeeper",
    "starlette+rk-scanner",
    "starlette+slowapi",
    "starlette+slowapi-asgi",
    "starlette+slowapi-mw",
    "fastapi",
    "fastapi+ratekeeper",
    "fastapi+slowapi",
    "fastapi+slowapi-asgi",
)
OPT_IN = ("starlette+counter", "starlette+rk-fixed")  # run only when named with --variant


# --------------------------------------------------------------------------- #
# The servers.                                                                 #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ServerSettings(Settings):
    warmup: float  # load before each measured window
    connections: int  # keep-alive connections
    loadgen: str  # "wrk" or "python"
    wrk: str
    http: str  # uvicorn --http
    loop: str  # uvicorn --loop
    server_cpu: int | None  # pin the servers to this CPU
    client_cpu: int | None  # pin the load generator to this CPU

    @property
    def load(self) -> Load:
        """How the harness loads every server: ``GET /api/ping`` with the demo key."""
        return Load(
            path=PATH,
            headers={"X-API-Key": API_KEY},
            seconds=self.seconds,
            warmup=self.warmup,
            connections=self.connections,
            generator=self.loadgen,
            wrk=self.wrk,
            client_cpu=self.client_cpu,
        )


def start_variant(variant: str, policy_dir: Path, settings: ServerSettings) -> Server:
    """``asgi_apps.py VARIANT`` on uvicorn in its own process, on a free port."""

    options = ["--policy-dir", str(policy_dir), "--http", settings.http, "--loop", settings.loop]
    if settings.server_cpu is not None:
        options += ["--cpu", str(settings.server_cpu)]

    def command(port: int) -> list[str]:
        return [sys.executable, str(APPS), variant, "--port", str(port), *options]

    return start_server(variant, command, ROOT)


def wait_ready(server: Server, settings: ServerSettings, deadline: float) -> dict[str, str]:
    """Wait for the port to answer, then check the answer: 200, the body, and
    for a limited variant the three ``X-RateLimit-*`` headers; return the headers."""
    status, headers, body = wait_answer(server, settings.load, deadline)
    if status != 200 or json.loads(body) != {"status": "ok"}:
        sys.exit(f"{server.name}: answered {status} {body!r}")
    missing = [name for name in RATE_HEADERS if name not in headers]
    if "+" in server.name and missing:
        sys.exit(f"{server.name}: no {', '.join(missing)} in {sorted(headers)}")
    return headers


# --------------------------------------------------------------------------- #
# In-process: the ASGI app called directly, no server, no sockets.             #
# --------------------------------------------------------------------------- #


def _scope() -> dict[str, Any]:
    """What uvicorn hands the app for the load generator's request."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"x-api-key", API_KEY.encode())],
        "state": {},
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Any) -> None:
    return None


async def _calls(app: Any, n: int) -> None:
    for _ in range(n):
        await app(_scope(), _receive, _discard)


async def _answer(app: Any) -> tuple[int, dict[str, str]]:
    sent: list[Any] = []

    async def keep(message: Any) -> None:
        sent.append(message)

    await app(_scope(), _receive, keep)
    start = sent[0]
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}


def run_inprocess(
    variants: list[str], policy_dir: Path, calls: int, rounds: int
) -> dict[str, Measurement]:
    """CPU time per request (``time.process_time``: this process only, so other
    load on the machine costs no time here; background threads count), each app
    checked and warmed up first, then the harness's interleaved rounds."""
    import asgi_apps

    apps = {name: asgi_apps.build(name, policy_dir) for name in variants}
    loop = new_loop()

    def one(name: str, _calibrated: int | None) -> Pass:
        start = time.process_time_ns()
        loop.run_until_complete(_calls(apps[name], calls))
        return Pass(calls, time.process_time_ns() - start)

    try:
        for name, app in apps.items():
            status, headers = loop.run_until_complete(_answer(app))
            if status != 200 or ("+" in name and "x-ratelimit-remaining" not in headers):
                sys.exit(f"in-process {name}: answered {status} {headers}")
            loop.run_until_complete(_calls(app, max(calls // 5, 200)))  # warm-up
        measurements = interleave(list(apps), rounds, one)
    finally:
        loop.close()
    return dict(zip(apps, measurements, strict=True))


def print_inprocess(
    costs: dict[str, Measurement], wiring: dict[str, tuple[str, str]], calls: int
) -> None:
    heading(f"In-process: CPU us per request, the ASGI app called directly ({calls:,} calls)")
    rows = []
    for name, m in costs.items():
        bare = name.split("+", 1)[0]
        best = m.best_ns / 1e3
        extra = (
            "-" if bare == name or bare not in costs else f"{best - costs[bare].best_ns / 1e3:+.1f}"
        )
        rows.append([name, *wiring[name], f"{best:.1f}", f"{m.median_ns / 1e3:.1f}", extra])
    print(
        table(
            ["variant", "library", "wiring", "CPU us/req (best)", "(median)", "vs bare"],
            rows,
        )
    )
    print()
    print(
        "The app awaited in a loop with the scope uvicorn builds for the load generator's "
        "request and a send that drops messages: what the framework and the limiter cost, "
        "without uvicorn, HTTP parsing or sockets. CPU time of this process, rounds "
        "interleaved; best and median over rounds."
    )


# --------------------------------------------------------------------------- #
# Profile: where a limited server spends its time under load (py-spy).         #
# --------------------------------------------------------------------------- #

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_ROOTS = ("RateLimitMiddleware.__call__", "RateLimitMiddleware.__call__.<locals>.send_with_headers")


def _frame(text: str) -> tuple[str, bool]:
    """``func (file)`` without the line number, and whether it is ratekeeper's."""
    match = _FRAME.match(text)
    if match is None:
        return text, False
    name = f"{match['func']} ({match['file']})"
    return name, "ratekeeper/" in match["file"]


def middleware_tree(samples: dict[tuple[str, ...], int], depth: int) -> dict[tuple[str, ...], int]:
    """Samples spent in the middleware's own code, by call path below it.

    A stack counts when it passes through ``RateLimitMiddleware.__call__`` (or its
    ``send_with_headers``) and the frame after that is the middleware's own, or
    there is none; the app it wraps and the server's ``send`` downstream are not
    its cost. Paths are cut ``depth`` frames below the root.
    """
    tree: dict[tuple[str, ...], int] = {}
    for stack, count in samples.items():
        frames = [_frame(f) for f in stack]
        for index in range(len(frames) - 1, -1, -1):
            if frames[index][0].split(" (")[0] in _ROOTS:
                break
        else:
            continue
        below = frames[index + 1 :]
        if below and not below[0][1] and not below[0][0].startswith("_with_headers"):
            continue  # the wrapped app, or the server's send
        path = ("RateLimitMiddleware (own code, all paths)",)
        tree[path] = tree.get(path, 0) + count
        for cut in range(1, min(depth, len(below)) + 1):
            key = (*path, *(name for name, _ in below[:cut]))
            tree[key] = tree.get(key, 0) + count
    return tree


def run_profile(
    variant: str, policy_dir: Path, settings: ServerSettings, rate: int, keep: Path | None
) -> None:
    """Load ``variant``'s server and sample it with py-spy for ``--seconds``."""
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("--profile needs py-spy on PATH (pip install py-spy)")
    load = settings.load
    server = start_variant(variant, policy_dir, settings)
    try:
        wait_ready(server, settings, time.monotonic() + 30)
        out = keep or policy_dir / f"{variant}.stacks"
        record = [
            spy,
            "record",
            "--format",
            "raw",
            "-r",
            str(rate),
            "-d",
            str(max(1, int(load.seconds) - 1)),
            "-p",
            str(server.process.pid),
            "-o",
            str(out),
        ]
        unprofiled = run_load(server, load)  # the CPU per request without py-spy's pauses
        loaded: list[Pass] = []
        import threading

        thread = threading.Thread(target=lambda: loaded.append(run_load(server, load)))
        thread.start()
        time.sleep(load.warmup + 0.5)
        subprocess.run(  # noqa: S603  # py-spy from PATH, fixed arguments
            record, capture_output=True, check=True, preexec_fn=pin(load.client_cpu)
        )
        thread.join()
    finally:
        server.stop()
    samples: dict[tuple[str, ...], int] = {}
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        key = tuple(stack.split(";"))
        samples[key] = samples.get(key, 0) + int(count)
    total = sum(samples.values())
    us = unprofiled.extra["server_us"]
    heading(
        f"Profile: {variant} under load, py-spy {rate} Hz ({total:,} samples; without "
        f"py-spy {unprofiled.rate:,.0f} req/s, server CPU {us:.0f} us/request)"
    )
    tree = middleware_tree(samples, depth=3)
    rows = [
        [
            "  " * (len(path) - 1) + path[-1],
            f"{100 * count / total:.1f}%",
            f"{us * count / total:.1f}",
        ]
        for path, count in sorted(tree.items())
        if count / total >= 0.004
    ]
    print(table(["frame (inclusive)", "share of samples", "us/request"], rows))
    print()
    print(
        "Stacks through RateLimitMiddleware.__call__ or its send_with_headers whose next "
        "frame is the middleware's own (the app it wraps and the server's send are left "
        "out), three levels deep, frames under 0.4% of the samples left out. us/request: "
        "the share times the server's CPU per request in a window just before, without "
        "py-spy (its pauses slow the server while it samples)."
    )


# --------------------------------------------------------------------------- #
# Output.                                                                      #
# --------------------------------------------------------------------------- #


def pct(fraction: float) -> str:
    return f"{100 * fraction:+.1f}%"


@dataclass
class Row:
    variant: str
    library: str
    wiring: str
    best: float
    median: float
    p50_ns: float  # the load generator's, median over rounds (nan: not measured)
    p99_ns: float
    cpu_us: float  # median server CPU us per request
    server_util: float  # median share of one CPU the server used
    client_util: float  # median share of one CPU the load generator used
    other_util: float  # median CPU (in CPUs) busy with anything else: kernel, other processes
    steal_util: float  # median CPU (in CPUs) taken by the hypervisor
    spread: float  # (best - worst) / best over rounds
    overhead: float | None = None  # 1 - best / bare best
    paired: float | None = None  # median over rounds of 1 - rate / bare rate
    cpu_extra: float | None = None  # server CPU us per request over the bare app's
    cpu_loss: float | None = None  # 1 - bare CPU/req / this CPU/req: the loss if CPU-bound
    budget: float | None = None  # CPU us/req a limiter may add and keep within the target


def summarize(results: dict[str, Measurement], wiring: dict[str, tuple[str, str]]) -> list[Row]:
    rows = [
        Row(
            variant,
            *wiring[variant],
            best=m.best,
            median=m.median,
            p50_ns=m.p50_ns,
            p99_ns=m.p99_ns,
            cpu_us=m.median_of("server_us"),
            server_util=m.median_of("server_util"),
            client_util=m.median_of("client_util"),
            other_util=m.median_of("other_util"),
            steal_util=m.median_of("steal_util"),
            spread=m.spread,
        )
        for variant, m in results.items()
    ]
    for row in rows:
        bare_name = row.variant.split("+", 1)[0]
        if bare_name == row.variant or bare_name not in results:
            continue
        bare = next(r for r in rows if r.variant == bare_name)
        row.overhead = 1 - row.best / bare.best
        row.paired = statistics.median(
            1 - mine / theirs
            for mine, theirs in zip(
                results[row.variant].rates, results[bare_name].rates, strict=True
            )
        )
        row.cpu_extra = row.cpu_us - bare.cpu_us
        row.cpu_loss = 1 - bare.cpu_us / row.cpu_us
        row.budget = bare.cpu_us * TARGET_OVERHEAD / (1 - TARGET_OVERHEAD)
    return rows


def print_results(rows: list[Row], settings: ServerSettings) -> list[str]:
    summary = []
    for framework in FRAMEWORKS:
        group = [r for r in rows if r.variant.split("+", 1)[0] == framework]
        if not group:
            continue
        heading(f"{framework}: GET {PATH}, {settings.load.connections} connections")
        lines = []
        for r in group:
            lines.append(
                [
                    r.variant,
                    r.library,
                    r.wiring,
                    f"{r.best:,.0f}",
                    f"{r.median:,.0f}",
                    ms_text(r.p50_ns),
                    ms_text(r.p99_ns),
                    f"{r.cpu_us:.0f}",
                    "-" if r.overhead is None else pct(-r.overhead),
                    "-" if r.paired is None else pct(-r.paired),
                    "-" if r.cpu_extra is None else f"{r.cpu_extra:+.0f}",
                    f"{100 * r.spread:.0f}%",
                ]
            )
            if r.overhead is None:
                continue
            ok = r.overhead <= TARGET_OVERHEAD
            target = (
                f" (target <= {100 * TARGET_OVERHEAD:.0f}%, i.e. <= {r.budget:.0f} us/request "
                f"added: {verdict(ok)})"
                if r.library == "ratekeeper"
                else " (no target: a peer)"
                if r.library != "-"
                else " (no limiter: the floor)"
            )
            summary.append(
                f"{r.variant}: overhead {100 * r.overhead:.1f}% of the bare app's req/s, best "
                f"against best (paired per round: {100 * r.paired:.1f}%; server CPU "
                f"{r.cpu_extra:+.0f} us/request, i.e. {100 * r.cpu_loss:.1f}% "  # type: ignore[operator]
                f"on a core of its own){target}"
            )
        print(
            table(
                [
                    "variant",
                    "library",
                    "wiring",
                    "req/s (best)",
                    "(median)",
                    "p50 ms",
                    "p99 ms",
                    "server CPU us/req",
                    "vs bare (best)",
                    "vs bare (paired)",
                    "CPU us/req vs bare",
                    "spread",
                ],
                lines,
            )
        )
    print()
    print(
        table(
            ["variant", "server", "load generator", "everything else", "stolen"],
            [
                [
                    r.variant,
                    f"{100 * r.server_util:.0f}%",
                    f"{100 * r.client_util:.0f}%",
                    f"{100 * r.other_util:.0f}%",
                    f"{100 * r.steal_util:.0f}%",
                ]
                for r in rows
            ],
        )
    )
    print()
    print(
        "CPU during the measured windows, in % of one CPU (median over rounds): the server "
        "process, the load generator, everything else that ran (the kernel's loopback "
        "work, other processes on the machine) and the hypervisor's steal."
    )
    return summary


# --------------------------------------------------------------------------- #
# Main.                                                                        #
# --------------------------------------------------------------------------- #


def server_stack(http: str, loop: str) -> str:
    """What uvicorn's ``auto`` picks: httptools and uvloop when importable."""

    def have(module: str) -> bool:
        try:
            __import__(module)
        except ImportError:
            return False
        return True

    if http == "auto":
        http = "httptools" if have("httptools") else "h11"
    if loop == "auto":
        loop = "uvloop" if have("uvloop") else "asyncio"
    parts = [f"http={http}", f"loop={loop}"]
    for module in (http, loop):
        if module in ("httptools", "uvloop", "h11"):
            parts.append(f"{module} {version(module)}")
    return ", ".join(parts)


def run_servers(
    variants: list[str],
    policy_dir: Path,
    settings: ServerSettings,
    wiring: dict[str, tuple[str, str]],
) -> list[str]:
    """Start every variant's server, load them in interleaved rounds, print the tables."""
    servers = [start_variant(v, policy_dir, settings) for v in variants]
    try:
        deadline = time.monotonic() + 30
        checked = {server.name: wait_ready(server, settings, deadline) for server in servers}
        limited = [name for name in checked if "+" in name]
        if limited:
            example = limited[0]
            shown = {k: v for k, v in checked[example].items() if k.startswith("x-ratelimit")}
            print(f"\nheaders checked, e.g. {example}: {shown}")
        print(flush=True)
        results = measure_servers(servers, settings.load, settings.rounds)
    finally:
        for server in servers:
            server.stop()
    summary = print_results(summarize(results, wiring), settings)
    print(f"load average at end: {load_average()}")
    return summary


def main(argv: list[str] | None = None) -> None:
    options = parser(__doc__, SECTIONS, seconds="measured load per variant and round")
    options.add_argument("--warmup", type=float, help="load before each measured window")
    options.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    options.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    options.add_argument("--http", default="auto", help="uvicorn --http (auto, h11, httptools)")
    options.add_argument("--loop", default="auto", help="uvicorn --loop (auto, asyncio, uvloop)")
    options.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    options.add_argument("--calls", type=int, help="in-process calls per variant and round")
    options.add_argument(
        "--profile",
        choices=ALL_VARIANTS + OPT_IN,
        metavar="VARIANT",
        help="instead: load one variant and show where its middleware spends time (py-spy)",
    )
    options.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    options.add_argument("--stacks", type=Path, help="with --profile: keep py-spy's raw stacks")
    options.add_argument(
        "--variant",
        action="append",
        choices=ALL_VARIANTS + OPT_IN,
        help="run only these variants (repeatable; give the bare app too for ratios)",
    )
    args = options.parse_args(argv)
    wrk = shutil.which("wrk")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if wrk else "python"
    if loadgen == "wrk" and not wrk:
        sys.exit("--loadgen wrk: wrk is not on PATH")
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2
    settings = ServerSettings.from_args(
        args,
        SECTIONS,
        seconds=(2.0, 3.0),
        rounds=(2, 5),
        warmup=args.warmup or 1.0,
        connections=args.connections,
        loadgen=loadgen,
        wrk=wrk or "wrk",
        http=args.http,
        loop=args.loop,
        server_cpu=cpus[0] if pinned else None,
        client_cpu=cpus[1] if pinned else None,
    )
    if loadgen == "wrk":  # wrk takes whole seconds
        whole = {"seconds": settings.seconds, "warmup": settings.warmup}
        settings = replace(settings, **{k: max(1, round(v)) for k, v in whole.items()})
    load = settings.load
    variants = args.variant or [
        v for v in ALL_VARIANTS if not args.quick or v.startswith("starlette")
    ]

    sys.path.insert(0, str(APPS.parent))
    import asgi_apps  # the same module the servers run

    wiring = {name: (lib, how) for name, (_, lib, how) in asgi_apps.VARIANTS.items()}
    if loadgen == "wrk":
        wrk_version = subprocess.run(  # noqa: S603
            [wrk, "--version"], capture_output=True, text=True, check=False
        ).stdout.split(" Copyright")[0]
        generator = f"{wrk_version.strip()} -t1 -c{load.connections}"
    else:
        generator = (
            f"Python asyncio protocols, raw keep-alive HTTP/1.1, {load.connections} "
            "connections in one process"
        )
    pinning = (
        f"servers on CPU {settings.server_cpu}, load generator on CPU {load.client_cpu}"
        if pinned
        else "none"
    )
    calls = args.calls or settings.pick(2_000, 5_000)
    print_header(
        "ratekeeper ASGI middleware vs the bare app and slowapi",
        PACKAGES,
        [
            "server: uvicorn, one worker per variant, access_log=False, "
            f"{server_stack(settings.http, settings.loop)}",
            f"load generator: {generator}",
            f"pinning: {pinning}",
            f"method: {settings.rounds} rounds, each variant {load.warmup:g}s warm-up + "
            f"{load.seconds:g}s measured per round, order rotating; best and median req/s",
            f"load average at start: {load_average()}",
            f"in-process: {calls:,} calls per variant and round, {settings.rounds} rounds",
        ],
        settings.quick,
    )

    summary: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rk-bench-asgi-") as tmp:
        if args.profile:
            run_profile(args.profile, Path(tmp), settings, args.rate, args.stacks)
            return
        if "inprocess" in settings.sections:
            costs = run_inprocess(variants, Path(tmp), calls, settings.rounds)
            print_inprocess(costs, wiring, calls)
        if "server" in settings.sections:
            summary = run_servers(variants, Path(tmp), settings, wiring)
    print_targets(summary)


if __name__ == "__main__":
    with suppress(KeyboardInterrupt):
        main()
