"""The client SDK against the retry libraries people use today, on one rate-limited server.

Issue 14's benchmark. One ``ratekeeper proxy`` (a subprocess on loopback, the
memory store) limits every ``X-Run`` header value to ``--limit`` requests per ``--window``
seconds (an exact sliding log, the ``X-RateLimit-*`` trio and ``Retry-After``)
in front of a plain upstream (``bench/gateway_apps.py upstream``). Each
subject sends 3x a limit's worth of ``GET /api/item/N`` with its own fresh
``X-Run``, from 1 and from 50 concurrent workers (threads for the sync clients,
tasks for the async ones), in one run:

- ratekeeper: ``RetryTransport`` (httpx, sync, 50 threads sharing one client),
  ``AsyncRetryTransport`` (50 tasks), and ``RetryTransport(pace=False)``;
- urllib3 ``Retry(status_forcelist=[429], respect_retry_after_header=True)``
  on a requests ``Session`` (what requests users have);
- httpx-retries ``RetryTransport`` (respects ``Retry-After`` by default);
- stamina ``retry_context`` on an httpx client, its hook returning the
  ``Retry-After`` as the wait;
- tenacity ``Retrying`` on an httpx client, its wait read from ``Retry-After``.

Printed per subject and concurrency: total time, the theoretical minimum (the
sliding log admits ``limit`` per window, so 3 limits need 2 windows), 429s
received on the wire (the proxy's own count of refusals, from its metrics on
``--admin-port``: what every client spent, retries hidden inside a library
included), and requests that failed (not a 200 in the end). The goals: no
failures, zero wire 429s with pacing, total within 10 % (+1 s) of the
minimum, fewer wire 429s than every peer.

Run from the repository root::

    python bench/bench_client.py            # window 5 s, limit 20: ~3 minutes
    python bench/bench_client.py --quick    # window 2 s, limit 6
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import requests
import stamina
import tenacity
from httpx_retries import Retry as HttpxRetry
from httpx_retries import RetryTransport as HttpxRetryTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry as Urllib3Retry

from harness.cli import Settings, parser
from harness.http_load import Server, free_port, start_server
from harness.report import heading, print_header, print_targets, table, verdict
from ratekeeper.client import AsyncRetryTransport, RetryTransport

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "gateway_apps.py"
PACKAGES = ("ratekeeper", "httpx", "requests", "urllib3", "httpx-retries", "stamina", "tenacity")
SECTIONS = ("clients",)
CONCURRENCY = (1, 50)
ATTEMPTS = 50  # every library may retry this often: no request should fail for want of it
PACED = ("ratekeeper", "ratekeeper async")

POLICY = """\
version: 1
name: bench-client
defaults: {{algorithm: sliding_log}}
anonymous_plan: anonymous
plans:
  anonymous: {{limits: {{api: "{limit}/{window}s"}}}}
limits:
  api: {{by: "header:x-run", rate: "{limit}/{window}s"}}
categories:
  - {{name: api, match: "/api/**", charge: [api]}}
headers: {{style: x-ratelimit}}
"""


@dataclass(frozen=True)
class ClientSettings(Settings):
    limit: int
    window: int


@dataclass
class Outcome:
    seconds: float
    wire_429: int
    failed: int


# --------------------------------------------------------------------------- #
# The subjects: each makes a client and fetches one URL to a final status.    #
# --------------------------------------------------------------------------- #

SyncFetch = Callable[[str, dict[str, str]], int]
AsyncFetch = Callable[[str, dict[str, str]], Any]


def ratekeeper_sync(pace: bool) -> tuple[SyncFetch, Callable[[], None]]:
    client = httpx.Client(
        transport=RetryTransport(
            httpx.HTTPTransport(limits=httpx.Limits(max_connections=64)),
            max_retries=ATTEMPTS,
            pace=pace,
        ),
        timeout=30,
    )
    return lambda url, headers: client.get(url, headers=headers).status_code, client.close


def urllib3_requests() -> tuple[SyncFetch, Callable[[], None]]:
    session = requests.Session()
    retry = Urllib3Retry(
        total=ATTEMPTS, status_forcelist=[429], respect_retry_after_header=True,
        backoff_factor=0.5, raise_on_status=False,
    )  # fmt: skip
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=64)
    session.mount("http://", adapter)
    return lambda url, headers: session.get(url, headers=headers, timeout=30).status_code, (
        session.close
    )


def httpx_retries() -> tuple[SyncFetch, Callable[[], None]]:
    transport = HttpxRetryTransport(
        transport=httpx.HTTPTransport(limits=httpx.Limits(max_connections=64)),
        retry=HttpxRetry(total=ATTEMPTS, backoff_factor=0.5, respect_retry_after_header=True),
    )
    client = httpx.Client(transport=transport, timeout=30)
    return lambda url, headers: client.get(url, headers=headers).status_code, client.close


class TooManyRequestsError(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0


def stamina_client() -> tuple[SyncFetch, Callable[[], None]]:
    client = httpx.Client(limits=httpx.Limits(max_connections=64), timeout=30)

    def hook(error: Exception) -> bool | float:
        if isinstance(error, TooManyRequestsError):
            return _retry_after(error.response)  # stamina waits what the hook returns
        return False

    def fetch(url: str, headers: dict[str, str]) -> int:
        try:
            for attempt in stamina.retry_context(on=hook, attempts=ATTEMPTS, timeout=None):
                with attempt:
                    response = client.get(url, headers=headers)
                    if response.status_code == 429:
                        raise TooManyRequestsError(response)
        except TooManyRequestsError as error:
            return error.response.status_code
        return response.status_code

    return fetch, client.close


def tenacity_client() -> tuple[SyncFetch, Callable[[], None]]:
    client = httpx.Client(limits=httpx.Limits(max_connections=64), timeout=30)

    def wait(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None
        return _retry_after(state.outcome.result())

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda response: response.status_code == 429),
        wait=wait,
        stop=tenacity.stop_after_attempt(ATTEMPTS + 1),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )

    def fetch(url: str, headers: dict[str, str]) -> int:
        return int(retrying(client.get, url, headers=headers).status_code)

    return fetch, client.close


SYNC_SUBJECTS: dict[str, Callable[[], tuple[SyncFetch, Callable[[], None]]]] = {
    "ratekeeper": lambda: ratekeeper_sync(pace=True),
    "ratekeeper, pace=False": lambda: ratekeeper_sync(pace=False),
    "urllib3 Retry (requests)": urllib3_requests,
    "httpx-retries": httpx_retries,
    "stamina": stamina_client,
    "tenacity": tenacity_client,
}
ASYNC_SUBJECTS = ("ratekeeper async",)


# --------------------------------------------------------------------------- #
# One run: 3 limits' worth from ``workers`` workers, a fresh X-Run.            #
# --------------------------------------------------------------------------- #


def limited_total(admin: int) -> int:
    """The proxy's refusals so far: its ``limited`` decisions, from ``/metrics``."""
    text = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=10).text
    pattern = r'^ratekeeper_decisions_total\{[^}]*outcome="limited"[^}]*\} ([0-9.e+]+)$'
    return int(sum(float(value) for value in re.findall(pattern, text, re.MULTILINE)))


def run_sync(name: str, workers: int, total: int, proxy: int) -> tuple[float, int]:
    fetch, close = SYNC_SUBJECTS[name]()
    headers = {"X-Run": f"bench-{uuid.uuid4().hex}"}
    urls = [f"http://127.0.0.1:{proxy}/api/item/{n}" for n in range(total)]

    def one(url: str) -> int:
        try:
            return fetch(url, headers)
        except Exception:  # a failed request is a row's figure, not a crash
            return -1

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        statuses = list(pool.map(one, urls))
    elapsed = time.perf_counter() - started
    close()
    return elapsed, sum(status != 200 for status in statuses)


async def _run_async(workers: int, total: int, proxy: int) -> tuple[float, int]:
    transport = AsyncRetryTransport(
        httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=64)), max_retries=ATTEMPTS
    )
    headers = {"X-Run": f"bench-{uuid.uuid4().hex}"}
    queue = list(range(total))
    statuses: list[int] = []
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:

        async def worker() -> None:
            while queue:
                n = queue.pop()
                try:
                    response = await client.get(
                        f"http://127.0.0.1:{proxy}/api/item/{n}", headers=headers
                    )
                    statuses.append(response.status_code)
                except Exception:
                    statuses.append(-1)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - started
    return elapsed, sum(status != 200 for status in statuses)


def measure(name: str, workers: int, settings: ClientSettings, proxy: int, admin: int) -> Outcome:
    total = 3 * settings.limit
    before = limited_total(admin)
    if name in ASYNC_SUBJECTS:
        seconds, failed = asyncio.run(_run_async(workers, total, proxy))
    else:
        seconds, failed = run_sync(name, workers, total, proxy)
    return Outcome(seconds, limited_total(admin) - before, failed)


# --------------------------------------------------------------------------- #
# The servers and the report.                                                  #
# --------------------------------------------------------------------------- #


def wait_port(server: Server, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            sys.exit(f"{server.name} exited ({server.process.returncode})")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    sys.exit(f"{server.name} did not come up")


def main() -> None:
    options = parser(__doc__ or "", SECTIONS, "unused here")
    options.add_argument("--limit", type=int, help="requests per window (default 20; quick 6)")
    options.add_argument("--window", type=int, help="the window in seconds (default 5; quick 2)")
    args = options.parse_args()
    settings = ClientSettings.from_args(
        args, SECTIONS, seconds=(0.0, 0.0), rounds=(1, 1),
        limit=args.limit or (6 if args.quick else 20),
        window=args.window or (2 if args.quick else 5),
    )  # fmt: skip
    minimum = 2.0 * settings.window
    print_header(
        "ratekeeper.client against today's retry libraries",
        PACKAGES,
        [
            f"load: 3 x {settings.limit} requests (limit {settings.limit} per "
            f"{settings.window} s, sliding log) per row, from 1 and from 50 workers",
            f"theoretical minimum: 2 windows = {minimum:.1f} s",
        ],
        settings.quick,
    )
    with tempfile.TemporaryDirectory() as directory:
        policy = Path(directory) / "policy.yaml"
        policy.write_text(textwrap.dedent(POLICY.format(limit=settings.limit,
                                                        window=settings.window)))  # fmt: skip
        upstream = start_server(
            "upstream",
            lambda port: [sys.executable, str(APPS), "upstream", "--port", str(port)],
            ROOT,
        )
        admin = free_port()
        proxy = start_server(
            "ratekeeper proxy",
            lambda port: [
                sys.executable,
                "-m",
                "ratekeeper",
                "proxy",
                "--upstream",
                f"http://127.0.0.1:{upstream.port}",
                "--policy",
                str(policy),
                "--registry",
                "none",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--admin-port",
                str(admin),
            ],
            ROOT,
        )
        try:
            wait_port(upstream, upstream.port)
            wait_port(proxy, admin)
            wait_port(proxy, proxy.port)
            report(settings, proxy.port, admin, minimum)
        finally:
            proxy.stop()
            upstream.stop()


def report(settings: ClientSettings, proxy: int, admin: int, minimum: float) -> None:
    names = [*SYNC_SUBJECTS, *ASYNC_SUBJECTS]
    outcomes: dict[tuple[str, int], Outcome] = {}
    for workers in CONCURRENCY:
        for name in names:
            outcomes[name, workers] = measure(name, workers, settings, proxy, admin)
            outcome = outcomes[name, workers]
            print(f"  {name}, {workers} worker(s): {outcome.seconds:.2f} s, "
                  f"{outcome.wire_429} wire 429s, {outcome.failed} failed", flush=True)  # fmt: skip
    heading("Clients")
    rows = []
    for workers in CONCURRENCY:
        for name in names:
            outcome = outcomes[name, workers]
            rows.append([
                name, str(workers), f"{outcome.seconds:.2f}", f"{minimum:.2f}",
                f"{outcome.seconds / minimum:.2f}x", str(outcome.wire_429), str(outcome.failed),
            ])  # fmt: skip
    print(table(["client", "workers", "total s", "minimum s", "of minimum", "wire 429s",
                 "failed"], rows))  # fmt: skip
    peers = [name for name in names if not name.startswith("ratekeeper")]
    goals = []
    for workers in CONCURRENCY:
        for name in PACED:
            outcome = outcomes[name, workers]
            fewest_peer = min(outcomes[peer, workers].wire_429 for peer in peers)
            goals += [
                f"{name}, {workers} worker(s): no failures: {verdict(outcome.failed == 0)}; "
                f"zero wire 429s: {verdict(outcome.wire_429 == 0)} ({outcome.wire_429}); "
                f"within 10 % (+1 s) of the minimum: "
                f"{verdict(outcome.seconds <= minimum * 1.1 + 1)} ({outcome.seconds:.2f} s "
                f"<= {minimum * 1.1 + 1:.2f} s); fewer wire 429s than every peer: "
                f"{verdict(outcome.wire_429 < fewest_peer)} (fewest of a peer: {fewest_peer})"
            ]
    print_targets(goals)


if __name__ == "__main__":
    main()
