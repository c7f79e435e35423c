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

Load: ``wrk`` (C, one thread, keep-alive connections) when it is on PATH, else
a Python generator (asyncio protocols on raw keep-alive HTTP/1.1 sockets, one
request in flight per connection, in its own process, uvloop if installed).
With two or more CPUs the servers are pinned to CPU 0 and the load generator
to CPU 1 (``--no-pin`` to let the scheduler place them).

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

import asyncio
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.cli import Settings, parser
from harness.machine import CLK_TCK, cpu_times, load_average, version
from harness.measure import Measurement, Pass, interleave, percentile
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raw_request(port: int, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One ``GET /api/ping`` on a fresh connection: status, headers (lower-case), body."""
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@dataclass
class Server:
    variant: str
    port: int
    process: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def limited(self) -> bool:
        return "+" in self.variant

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(variant: str, policy_dir: Path, settings: LoadSettings) -> Server:
    port = free_port()
    command = [
        sys.executable,
        str(APPS),
        variant,
        "--port",
        str(port),
        "--policy-dir",
        str(policy_dir),
        "--http",
        settings.http,
        "--loop",
        settings.loop,
    ]
    if settings.server_cpu is not None:
        command += ["--cpu", str(settings.server_cpu)]
    process = subprocess.Popen(command, cwd=ROOT)  # noqa: S603  # our own script
    return Server(variant, port, process)


def wait_ready(server: Server, deadline: float) -> None:
    """Wait for the port to answer, then check the answer: 200, the body, and
    for a limited variant the three ``X-RateLimit-*`` headers."""
    while True:
        if server.process.poll() is not None:
            sys.exit(f"{server.variant}: the server exited ({server.process.returncode})")
        try:
            status, headers, body = raw_request(server.port)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{server.variant}: the server did not come up")
            time.sleep(0.05)
    if status != 200 or json.loads(body) != {"status": "ok"}:
        sys.exit(f"{server.variant}: answered {status} {body!r}")
    missing = [name for name in RATE_HEADERS if name not in headers]
    if server.limited and missing:
        sys.exit(f"{server.variant}: no {', '.join(missing)} in {sorted(headers)}")
    server.headers = headers


# --------------------------------------------------------------------------- #
# Load generators.                                                             #
# --------------------------------------------------------------------------- #


def load_pass(
    requests: int,
    seconds: float,
    bad: int,
    p50_ms: float | None,
    p99_ms: float | None,
    cpu: dict[str, float],
) -> Pass:
    """What one measured window gave, as the harness's pass: the requests over the
    window, the load generator's percentiles, and per-window CPU figures.

    ``cpu`` holds CPU seconds in the window: ``client`` (the load generator),
    ``server`` (the server process), ``busy`` (the whole machine, all CPUs,
    steal included) and ``steal`` (taken by the hypervisor, all CPUs).
    """
    server, client, steal = cpu["server"], cpu["client"], cpu["steal"]
    return Pass(
        requests,
        seconds * 1e9,
        None if p50_ms is None else p50_ms * 1e6,
        None if p99_ms is None else p99_ms * 1e6,
        extra={
            "bad": bad,  # answers other than 200, and socket errors
            "server_us": server * 1e6 / max(requests, 1),
            "server_util": server / seconds,
            "client_util": client / seconds,
            "other_util": (cpu["busy"] - steal - server - client) / seconds,
            "steal_util": steal / seconds,
        },
    )


def _pin(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _WRK_UNITS[unit]


def run_wrk(server: Server, settings: LoadSettings) -> Pass:
    url = f"http://127.0.0.1:{server.port}{PATH}"

    def wrk(seconds: float, latency: bool) -> str:
        command = [
            settings.wrk,
            "-t1",
            f"-c{settings.connections}",
            f"-d{seconds:g}s",
            "-H",
            f"X-API-Key: {API_KEY}",
            url,
        ]
        if latency:
            command.insert(1, "--latency")
        return subprocess.run(  # noqa: S603  # wrk from PATH, fixed arguments
            command,
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=_pin(settings.client_cpu),
        ).stdout

    wrk(settings.warmup, latency=False)
    client_before, server_before = _children_cpu(), server.cpu_seconds()
    busy_before, steal_before = cpu_times()
    output = wrk(settings.seconds, latency=True)
    client_cpu, server_cpu = _children_cpu() - client_before, server.cpu_seconds() - server_before
    busy, steal = cpu_times()
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if match is None:
        sys.exit(f"{server.variant}: cannot read wrk's output:\n{output}")
    requests = int(match.group(1))
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors:
        bad += sum(int(n) for n in errors.groups())
    # wrk counts requests over its own -d window; its runtime line is that window
    seconds = float(re.search(r"requests in ([\d.]+)s", output).group(1))  # type: ignore[union-attr]
    cpu = {
        "client": client_cpu,
        "server": server_cpu,
        "busy": busy - busy_before,
        "steal": steal - steal_before,
    }
    return load_pass(
        requests, seconds, bad, _wrk_ms(percentiles["50"]), _wrk_ms(percentiles["99"]), cpu
    )


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, generator: _PyGenerator) -> None:
        self.generator = generator
        self.buffer = bytearray()
        self.started = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        self.started = time.perf_counter_ns()
        self.transport.write(self.generator.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            at = head.find(b"content-length:")
            if at < 0:
                raise RuntimeError("a response without Content-Length")
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15 : eol if eol >= 0 else len(head)])
            total = end + 4 + length
            if len(buffer) < total:
                return
            status = buffer[9:12]
            del buffer[:total]
            self.generator.done(self.started, status)
            if not self.generator.running:
                self.transport.close()  # type: ignore[union-attr]
                return
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.generator.lost += exc is not None


class _PyGenerator:
    def __init__(self, port: int) -> None:
        self.request = (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-API-Key: {API_KEY}\r\n\r\n"
        ).encode()
        self.running = True
        self.measuring = False
        self.latencies: list[int] = []
        self.count = 0
        self.bad = 0
        self.lost = 0

    def done(self, started: int, status: bytes) -> None:
        if self.measuring:
            self.count += 1
            if status != b"200":
                self.bad += 1
            if self.count % 8 == 0:  # every 8th: enough for p99, a cheap loop
                self.latencies.append(time.perf_counter_ns() - started)


async def _py_load(port: int, connections: int, warmup: float, seconds: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    generator = _PyGenerator(port)
    transports = []
    for _ in range(connections):
        transport, _ = await loop.create_connection(
            lambda: _Connection(generator), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.sleep(warmup)
    print("start", flush=True)
    cpu, start = time.process_time(), time.perf_counter()
    generator.measuring = True
    await asyncio.sleep(seconds)
    generator.measuring = False
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print("end", flush=True)
    generator.running = False
    await asyncio.sleep(0.05)
    for transport in transports:
        transport.close()
    latencies = sorted(generator.latencies)

    def pick(fraction: float) -> float | None:
        return percentile(latencies, fraction) / 1e6 if latencies else None

    return {
        "requests": generator.count,
        "seconds": elapsed,
        "bad": generator.bad + generator.lost,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "client_cpu": cpu,
    }


def load_worker(argv: list[str]) -> None:
    """``bench_asgi.py --load-worker PORT CONNECTIONS WARMUP SECONDS``: prints
    ``start`` and ``end`` around the measured window, then a JSON line."""
    port, connections, warmup, seconds = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    loop = _new_loop()
    try:
        result = loop.run_until_complete(_py_load(port, connections, warmup, seconds))
    finally:
        loop.close()
    print(json.dumps(result), flush=True)


def run_python(server: Server, settings: LoadSettings) -> Pass:
    command = [
        sys.executable,
        __file__,
        "--load-worker",
        str(server.port),
        str(settings.connections),
        str(settings.warmup),
        str(settings.seconds),
    ]
    process = subprocess.Popen(  # noqa: S603  # this script
        command,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_pin(settings.client_cpu),
    )
    assert process.stdout is not None
    lines = iter(process.stdout.readline, "")
    if next(lines).strip() != "start":
        sys.exit(f"{server.variant}: the load generator failed")
    server_before = server.cpu_seconds()
    busy_before, steal_before = cpu_times()
    if next(lines).strip() != "end":
        sys.exit(f"{server.variant}: the load generator failed")
    server_cpu = server.cpu_seconds() - server_before
    busy, steal = cpu_times()
    result = json.loads(next(lines))
    if process.wait() != 0:
        sys.exit(f"{server.variant}: the load generator failed")
    cpu = {
        "client": result["client_cpu"],
        "server": server_cpu,
        "busy": busy - busy_before,
        "steal": steal - steal_before,
    }
    return load_pass(
        result["requests"],
        result["seconds"],
        result["bad"],
        result["p50_ms"],
        result["p99_ms"],
        cpu,
    )


# --------------------------------------------------------------------------- #
# Settings, measurement.                                                       #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class LoadSettings(Settings):
    warmup: float
    connections: int
    loadgen: str  # "wrk" or "python"
    wrk: str
    http: str
    loop: str
    server_cpu: int | None
    client_cpu: int | None


def measure(servers: list[Server], settings: LoadSettings) -> dict[str, Measurement]:
    """Load every server once a round, in the harness's rotating order."""
    run = run_wrk if settings.loadgen == "wrk" else run_python

    def one(server: Server, calls: int | None) -> Pass:
        load = run(server, settings)
        if load.extra["bad"]:
            sys.exit(f"{server.variant}: {load.extra['bad']:.0f} answers were not 200 (or errors)")
        return load

    def report(round_: int, last: list[Pass]) -> None:
        rates = ", ".join(f"{s.variant} {p.rate:,.0f}" for s, p in zip(servers, last, strict=True))
        print(f"  round {round_ + 1}/{settings.rounds}: {rates}", flush=True)

    measurements = interleave(servers, settings.rounds, one, after_round=report)
    return {s.variant: m for s, m in zip(servers, measurements, strict=True)}


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


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (as uvicorn's ``auto`` picks), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_inprocess(
    variants: list[str], policy_dir: Path, calls: int, rounds: int
) -> dict[str, Measurement]:
    """CPU time per request (``time.process_time``: this process only, so other
    load on the machine costs no time here; background threads count), each app
    checked and warmed up first, then the harness's interleaved rounds."""
    import asgi_apps

    apps = {name: asgi_apps.build(name, policy_dir) for name in variants}
    loop = _new_loop()

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
    variant: str, policy_dir: Path, settings: LoadSettings, rate: int, keep: Path | None
) -> None:
    """Load ``variant``'s server and sample it with py-spy for ``settings.seconds``."""
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("--profile needs py-spy on PATH (pip install py-spy)")
    server = start_server(variant, policy_dir, settings)
    try:
        wait_ready(server, time.monotonic() + 30)
        out = keep or policy_dir / f"{variant}.stacks"
        record = [
            spy,
            "record",
            "--format",
            "raw",
            "-r",
            str(rate),
            "-d",
            str(max(1, int(settings.seconds) - 1)),
            "-p",
            str(server.process.pid),
            "-o",
            str(out),
        ]
        run = run_wrk if settings.loadgen == "wrk" else run_python
        unprofiled = run(server, settings)  # the CPU per request without py-spy's pauses
        load: list[Pass] = []
        import threading

        thread = threading.Thread(target=lambda: load.append(run(server, settings)))
        thread.start()
        time.sleep(settings.warmup + 0.5)
        subprocess.run(  # noqa: S603  # py-spy from PATH, fixed arguments
            record, capture_output=True, check=True, preexec_fn=_pin(settings.client_cpu)
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


def print_results(rows: list[Row], settings: LoadSettings) -> list[str]:
    summary = []
    for framework in FRAMEWORKS:
        group = [r for r in rows if r.variant.split("+", 1)[0] == framework]
        if not group:
            continue
        heading(f"{framework}: GET {PATH}, {settings.connections} connections")
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
    settings: LoadSettings,
    wiring: dict[str, tuple[str, str]],
) -> list[str]:
    """Start every variant's server, load them in interleaved rounds, print the tables."""
    servers = [start_server(v, policy_dir, settings) for v in variants]
    try:
        deadline = time.monotonic() + 30
        for server in servers:
            wait_ready(server, deadline)
        limited = [s for s in servers if s.limited]
        if limited:
            example = limited[0]
            shown = {k: v for k, v in example.headers.items() if k.startswith("x-ratelimit")}
            print(f"\nheaders checked, e.g. {example.variant}: {shown}")
        print(flush=True)
        results = measure(servers, settings)
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
    pin = not args.no_pin and len(cpus) >= 2
    settings = LoadSettings.from_args(
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
        server_cpu=cpus[0] if pin else None,
        client_cpu=cpus[1] if pin else None,
    )
    if loadgen == "wrk":  # wrk takes whole seconds
        whole = {"seconds": settings.seconds, "warmup": settings.warmup}
        settings = replace(settings, **{k: max(1, round(v)) for k, v in whole.items()})
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
        generator = f"{wrk_version.strip()} -t1 -c{settings.connections}"
    else:
        generator = (
            f"Python asyncio protocols, raw keep-alive HTTP/1.1, {settings.connections} "
            "connections in one process"
        )
    pinning = (
        f"servers on CPU {settings.server_cpu}, load generator on CPU {settings.client_cpu}"
        if pin
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
            f"method: {settings.rounds} rounds, each variant {settings.warmup:g}s warm-up + "
            f"{settings.seconds:g}s measured per round, order rotating; best and median req/s",
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
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        load_worker(sys.argv[2:])
    else:
        with suppress(KeyboardInterrupt):
            main()
