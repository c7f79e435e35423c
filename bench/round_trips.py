"""Redis round trips per policy decision: the client's commands around one ``check``.

DESIGN's rule 2 says a decision is one ``EVALSHA`` whatever it checks. This
counts what a ``Limiter`` on a ``RedisStore`` actually sends for requests of
the example policies (and of one policy with everything: a cap, a lockout, two
rates and a penalty), admitted and refused: a ``MONITOR`` connection sees every
command, and the commands scripts run inside Redis (source ``lua``) are left
out. Only the public API is used, so the same file measures any commit::

    python bench/round_trips.py                       # this checkout
    /other/checkout/.venv/bin/python bench/round_trips.py   # another commit's ratekeeper

The release of a lease after the response and ``record_response`` are their own
calls by design, and are not counted.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import redis  # noqa: E402

from harness.report import table  # noqa: E402
from ratekeeper import Limiter, RedisStore, load_policy  # noqa: E402
from ratekeeper.policy import policy_from_text  # noqa: E402
from support.policies import EVERYTHING  # noqa: E402
from support.redis_servers import RedisServer, find_redis_server  # noqa: E402

Request = dict[str, Any]
#: (policy, label, request, what to do before counting)
Case = tuple[str, str, Request, Callable[[Limiter], None]]


def _nothing(limiter: Limiter) -> None:
    pass


def _spend(request: Request, times: int) -> Callable[[Limiter], None]:
    def spend(limiter: Limiter) -> None:
        for _ in range(times):
            decision = limiter.check(**request, lease=True)
            limiter.release(decision)

    return spend


def _fail_logins(request: Request, times: int) -> Callable[[Limiter], None]:
    def fail(limiter: Limiter) -> None:
        for _ in range(times):
            decision = limiter.check(**request, lease=True)
            limiter.record_response(decision, 401)
            limiter.release(decision)

    return fail


def _hold(request: Request, times: int) -> Callable[[Limiter], None]:
    def hold(limiter: Limiter) -> None:
        for _ in range(times):
            limiter.check(**request, lease=True)  # never released: the cap is full

    return hold


FLOWCMS: Request = {"method": "GET", "path": "/api/pages", "headers": {"X-API-Key": "demo-starter"}}
UTM_API: Request = {"method": "GET", "path": "/api/alerts", "headers": {"X-API-Key": "demo-user"}}
UTM_LOGIN: Request = {"method": "POST", "path": "/api/authenticate", "client_ip": "192.0.2.7"}
SCANNER: Request = {"method": "POST", "path": "/api/scans", "headers": {"X-API-Key": "demo-free"}}
LOGIN: Request = {"method": "POST", "path": "/login", "client_ip": "192.0.2.9"}

CASES: list[Case] = [
    ("flowcms", "cap + two rates, admitted", FLOWCMS, _nothing),
    ("flowcms", "cap full", FLOWCMS, _hold(FLOWCMS, 5)),
    ("utmstack", "one rate by user, admitted", UTM_API, _nothing),
    ("utmstack", "login, lockout checked, admitted", UTM_LOGIN, _nothing),
    ("utmstack", "login, blocked", UTM_LOGIN, _fail_logins(UTM_LOGIN, 5)),
    ("scanner", "two rates, admitted", SCANNER, _nothing),
    ("everything", "admitted", LOGIN, _nothing),
    ("everything", "refused by a rate (penalty counted)", LOGIN, _spend(LOGIN, 3)),
    ("everything", "cap full", LOGIN, _hold(LOGIN, 2)),
    ("everything", "lockout-blocked", LOGIN, _fail_logins(LOGIN, 2)),
    ("everything", "penalty-blocked", LOGIN, _spend(LOGIN, 5)),
]


class Monitor:
    """Counts the commands clients send (not scripts) between two ``ECHO`` markers.

    ``MONITOR`` output arrives in the order Redis ran the commands, but later than
    they ran: the markers, sent on a connection of their own, say where a count
    starts and ends, so no late line of an earlier call is counted.
    """

    def __init__(self, client: redis.Redis, marker: redis.Redis) -> None:
        self._client = client  # kept: a collected client closes its pool, MONITOR's too
        self._monitor = client.monitor()
        self._connection = self._monitor.__enter__()
        self._marker = marker
        self.counts: Counter[str] = Counter()
        self._seen = threading.Event()
        self._watching = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        connection = self._connection.connection
        while True:
            try:
                raw = connection.read_response()
            except Exception:  # the connection closed at the end
                return
            line = raw.decode() if isinstance(raw, bytes) else str(raw)
            source = line[line.find("[") + 1 : line.find("]")].split(" ")[-1]
            words = line[line.find("]") + 1 :].strip().split(" ")
            name = words[0].strip('"').upper()
            if name == "ECHO" and words[-1].strip('"').startswith("round-trips-"):
                self._watching = words[-1].strip('"') == "round-trips-start"
                self._seen.set()
            elif self._watching and source != "lua":
                self.counts[name] += 1

    def _mark(self, what: str) -> None:
        self._seen.clear()
        self._marker.echo("round-trips-" + what)
        if not self._seen.wait(5):
            raise RuntimeError("MONITOR did not show the marker within 5 s")

    def count(self, call: Callable[[], object]) -> Counter[str]:
        """The client commands ``call`` sends."""
        self._mark("start")
        self.counts = Counter()
        call()
        self._mark("end")
        return self.counts


def _policy(name: str) -> Any:
    if name == "everything":
        return policy_from_text(EVERYTHING)
    return load_policy(ROOT / "examples" / f"{name}.yaml")


def main() -> None:
    import ratekeeper

    print(f"# Redis round trips per decision (ratekeeper at {Path(ratekeeper.__file__).parent})\n")
    rows = []
    with RedisServer(find_redis_server()) as server:
        url = server.url
        admin = redis.Redis.from_url(url)
        marker = redis.Redis.from_url(url)
        marker.ping()  # connected (HELLO) before anything is counted
        monitor = Monitor(redis.Redis.from_url(url), marker)
        for policy_name, label, request, before in CASES:
            admin.flushall()
            store = RedisStore.from_url(url, timeout=2.0)
            limiter = Limiter(_policy(policy_name), store=store)
            limiter.check(method="GET", path="/warm-up/none")
            before(limiter)
            decision: Any = None

            def decide(limiter: Limiter = limiter, request: Request = request) -> None:
                nonlocal decision
                decision = limiter.check(**request, lease=True)

            decide()  # scripts loaded (NOSCRIPT -> SCRIPT LOAD once) outside the count
            admin.flushall()
            before(limiter)
            counts = monitor.count(decide)
            rows.append(
                [
                    policy_name,
                    label,
                    str(decision.status_code),
                    str(sum(counts.values())),
                    ", ".join(f"{name} {n}" for name, n in sorted(counts.items())),
                ]
            )
            store.close()
        admin.close()
        marker.close()
    print(table(["policy", "request", "status", "round trips", "commands"], rows))


if __name__ == "__main__":
    main()
