"""HTTP load on real servers: wrk when it is on PATH, else a Python generator.

What a middleware costs only shows in a real server under load, so a server
benchmark starts each variant in its own process on a free loopback port and
loads it in the harness's interleaved rounds (``measure_servers``). A round
gives each server ``warmup`` seconds of load, then ``seconds`` of measured
load; a measured window is a harness ``Pass``: requests over the window, the
load generator's p50/p99, and CPU figures as extras (the server's CPU per
request from ``/proc/<pid>/stat``, a view of the cost less sensitive to how
busy the machine was; the shares of a CPU the server, the load generator,
everything else and the hypervisor's steal took).

Load generators: ``wrk`` (C, one thread, keep-alive connections), or a Python
generator (asyncio protocols on raw keep-alive HTTP/1.1 sockets, one request in
flight per connection, in its own process: ``python -m harness.http_load``,
uvloop if installed). With ``client_cpu`` the generator is pinned to that CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.machine import CLK_TCK, cpu_times
from harness.measure import Measurement, Pass, interleave, percentile

BENCH = Path(__file__).resolve().parent.parent  # where ``-m harness.http_load`` imports from


@dataclass(frozen=True)
class Load:
    """How every server is loaded: the one request, the windows, the generator.

    The request is a ``GET`` unless ``method`` says otherwise; a ``body`` is
    sent with its ``Content-Length`` (and ``headers`` should give its type).
    wrk sends ``GET`` only here: a load with another method or a body needs
    the Python generator.
    """

    path: str
    headers: dict[str, str]  # sent with every request
    seconds: float  # measured load per server and round
    warmup: float  # load before each measured window
    connections: int  # keep-alive connections
    generator: str  # "wrk" or "python"
    wrk: str  # wrk's path
    client_cpu: int | None  # pin the load generator to this CPU
    method: str = "GET"
    body: bytes = b""

    def request(self, port: int, *, close: bool = False) -> bytes:
        head = [f"{self.method} {self.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        head += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.body or self.method != "GET":
            head.append(f"Content-Length: {len(self.body)}")
        if close:
            head.append("Connection: close")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + self.body


# --------------------------------------------------------------------------- #
# The servers.                                                                 #
# --------------------------------------------------------------------------- #


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process of the benchmark's, listening on ``port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

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


def start_server(name: str, command: Callable[[int], list[str]], cwd: Path) -> Server:
    """Run ``command(port)`` (the benchmark's own script) on a free port."""
    port = free_port()
    process = subprocess.Popen(command(port), cwd=cwd)  # noqa: S603  # the bench's own script
    return Server(name, port, process)


def get(port: int, load: Load, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """The request on a fresh connection: status, headers (lower-case), body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(load.request(port, close=True))
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


def wait_answer(server: Server, load: Load, deadline: float) -> tuple[int, dict[str, str], bytes]:
    """The first answer the server gives, once its port answers (the run stops
    if the server exits or does not come up by ``deadline``)."""
    while True:
        if server.process.poll() is not None:
            sys.exit(f"{server.name}: the server exited ({server.process.returncode})")
        try:
            return get(server.port, load)
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{server.name}: the server did not come up")
            time.sleep(0.05)


# --------------------------------------------------------------------------- #
# One measured window.                                                         #
# --------------------------------------------------------------------------- #


def window(
    requests: int,
    seconds: float,
    bad: int,
    p50_ms: float | None,
    p99_ms: float | None,
    cpu: dict[str, float],
) -> Pass:
    """What one measured window gave, as the harness's pass.

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


def pin(cpu: int | None) -> Any:
    """A ``preexec_fn`` that pins a child process to ``cpu`` (``None``: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _CpuMeter:
    """CPU seconds the server, the whole machine and the hypervisor took from
    its making to ``read`` (read as the window ends: the load generator winds
    down after it); the load generator's own are the caller's to add."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.server_before = server.cpu_seconds()
        self.busy_before, self.steal_before = cpu_times()

    def read(self) -> dict[str, float]:
        server = self.server.cpu_seconds() - self.server_before
        busy, steal = cpu_times()
        return {
            "server": server,
            "busy": busy - self.busy_before,
            "steal": steal - self.steal_before,
        }


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _WRK_UNITS[unit]


def run_wrk(server: Server, load: Load) -> Pass:
    if load.method != "GET" or load.body:
        sys.exit(f"{server.name}: wrk sends GET only here; use the Python load generator")
    url = f"http://127.0.0.1:{server.port}{load.path}"
    headers = [arg for name, value in load.headers.items() for arg in ("-H", f"{name}: {value}")]

    def wrk(seconds: float, latency: bool) -> str:
        command = [load.wrk, "-t1", f"-c{load.connections}", f"-d{seconds:g}s", *headers, url]
        if latency:
            command.insert(1, "--latency")
        return subprocess.run(  # noqa: S603  # wrk from PATH, fixed arguments
            command,
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=pin(load.client_cpu),
        ).stdout

    wrk(load.warmup, latency=False)
    client_before, meter = _children_cpu(), _CpuMeter(server)
    output = wrk(load.seconds, latency=True)
    client = _children_cpu() - client_before
    cpu = {**meter.read(), "client": client}
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if match is None:
        sys.exit(f"{server.name}: cannot read wrk's output:\n{output}")
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
    return window(
        requests, seconds, bad, _wrk_ms(percentiles["50"]), _wrk_ms(percentiles["99"]), cpu
    )


def run_python(server: Server, load: Load) -> Pass:
    command = [
        sys.executable,
        "-m",
        "harness.http_load",
        json.dumps({"port": server.port, "request": load.request(server.port).decode()}),
        str(load.connections),
        str(load.warmup),
        str(load.seconds),
    ]
    process = subprocess.Popen(  # noqa: S603  # this module
        command,
        stdout=subprocess.PIPE,
        text=True,
        cwd=BENCH,
        preexec_fn=pin(load.client_cpu),
    )
    assert process.stdout is not None
    lines = iter(process.stdout.readline, "")
    if next(lines).strip() != "start":
        sys.exit(f"{server.name}: the load generator failed")
    meter = _CpuMeter(server)
    if next(lines).strip() != "end":
        sys.exit(f"{server.name}: the load generator failed")
    cpu = meter.read()
    result = json.loads(next(lines))
    cpu["client"] = result["client_cpu"]
    if process.wait() != 0:
        sys.exit(f"{server.name}: the load generator failed")
    return window(
        result["requests"],
        result["seconds"],
        result["bad"],
        result["p50_ms"],
        result["p99_ms"],
        cpu,
    )


def run_load(server: Server, load: Load) -> Pass:
    """One warm-up and one measured window on ``server``, by ``load``'s generator."""
    return (run_wrk if load.generator == "wrk" else run_python)(server, load)


def measure_servers(servers: list[Server], load: Load, rounds: int) -> dict[str, Measurement]:
    """Load every server once a round, in the harness's rotating order; the run
    stops at the first answer that is not a 200 (or a socket error)."""

    def one(server: Server, calls: int | None) -> Pass:
        result = run_load(server, load)
        if result.extra["bad"]:
            sys.exit(f"{server.name}: {result.extra['bad']:.0f} answers were not 200 (or errors)")
        return result

    def report(round_: int, last: list[Pass]) -> None:
        rates = ", ".join(f"{s.name} {p.rate:,.0f}" for s, p in zip(servers, last, strict=True))
        print(f"  round {round_ + 1}/{rounds}: {rates}", flush=True)

    measurements = interleave(servers, rounds, one, after_round=report)
    return {s.name: m for s, m in zip(servers, measurements, strict=True)}


# --------------------------------------------------------------------------- #
# The Python load generator, in its own process.                               #
# --------------------------------------------------------------------------- #


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (as uvicorn's ``auto`` picks), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, generator: _Generator) -> None:
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


class _Generator:
    def __init__(self, request: bytes) -> None:
        self.request = request
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


async def _load(
    port: int, request: bytes, connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    generator = _Generator(request)
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
    """``python -m harness.http_load TARGET CONNECTIONS WARMUP SECONDS`` (TARGET: JSON,
    the port and the request): prints ``start`` and ``end`` around the measured
    window, then a JSON line."""
    target = json.loads(argv[0])
    connections, warmup, seconds = int(argv[1]), float(argv[2]), float(argv[3])
    request = target["request"].encode()
    loop = new_loop()
    try:
        result = loop.run_until_complete(
            _load(target["port"], request, connections, warmup, seconds)
        )
    finally:
        loop.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    load_worker(sys.argv[1:])
