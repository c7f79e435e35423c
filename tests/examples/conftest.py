"""Shared ground for the example policies' tests: one example on a fake clock, four faces.

Every test drives a real policy file from ``examples/``; time moves by
assignment on a :class:`~support.clock.Clock`, never by sleeping. The
documented numbers come from SEEDS.md (the four providers' published limits and
the conventions the examples follow).

Each test that takes the ``example`` fixture runs once per *face*:

``limiter``
    :class:`LimiterApi`: the policy-driven :class:`~ratekeeper.Limiter`
    itself; ``check`` returns its :class:`~ratekeeper.PolicyDecision`.
``asgi``
    :class:`AsgiApi`: real HTTP requests through ``httpx.ASGITransport`` to
    ``ratekeeper.integrations.asgi.RateLimitMiddleware`` in front of the
    example's upstream (``upstreams.AsgiUpstream``, Starlette).
``wsgi``
    :class:`WsgiApi`: the same through ``httpx.WSGITransport`` and
    ``ratekeeper.integrations.wsgi.RateLimitMiddleware`` in front of
    ``upstreams.WsgiUpstream``.
``service``
    :class:`ServiceApi`: the decision service (``ratekeeper serve``'s app)
    through ``httpx.ASGITransport``: each request is a ``POST /v1/check``; a
    lease it returns is given back at once with ``POST /v1/release`` (the
    upstream answered at once), and a login's upstream status is sent with
    ``POST /v1/report``, as an app calling the service would.
``gateway``
    :class:`GatewayApi`: real HTTP requests through ``httpx.ASGITransport`` to
    the gateway (``ratekeeper.gateway.build_gateway``: the ASGI middleware around
    the proxy), which sends them on over loopback to the example's upstream
    (``upstreams.AsgiUpstream``) under a real uvicorn; the gateway's store is
    the face's, on the fake clock.

The service face returns a :class:`ServiceAnswer`: status, header fields,
allowed, plan, category and key id from the service's JSON; the body is the
JSON's ``body`` written back as JSON (the policy's own bytes, when they are
JSON as ``json.dumps`` writes it). Each is checked against the decision the
service made, and the answer against leaking any counter key.

The HTTP faces return an :class:`HttpAnswer`, which reads like a decision: its
``status_code``, ``headers`` (the header fields the middleware added), ``body``
and ``content_type`` (a refusal's; ``None`` when the upstream answered) and
``allowed`` (the upstream answered) come from the wire, so every assertion a
test makes on them is an assertion on what a client receives. What the wire
does not show (``category``, ``plan``, ``statuses``, ``client_ip``, ...) is
read from the decision the middleware made, caught by a spy on
``Limiter.check``/``AsyncLimiter.check``. Every answer is also checked against
that decision as it arrives: the same status, header fields and body bytes, and
the upstream's own answer passed through untouched when admitted.

A test that only makes sense on one face says so with
``@pytest.mark.faces("limiter")``. Test modules name these classes in
annotations only (under ``TYPE_CHECKING``): importing ``conftest`` at run time
picks whichever conftest pytest loaded last.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import json
import math
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, unquote, unquote_to_bytes

import httpx
import pytest
from upstreams import LOGIN_BODIES, UPSTREAM_HEADER, AsgiUpstream, WsgiUpstream, answer

from ratekeeper import (
    AsyncLimiter,
    Block,
    Limiter,
    MemoryStore,
    Policy,
    PolicyDecision,
    load_policy,
)
from ratekeeper.engine import Lane
from ratekeeper.stores.base import ChargeResult
from support.clock import Clock

EXAMPLES = Path(__file__).parents[2] / "examples"

#: the default client address of a request (TEST-NET-3)
CLIENT_IP = "203.0.113.7"
#: the faces every example test runs on, in order
FACES = ("limiter", "asgi", "wsgi", "service", "gateway")
LOGIN = ("POST", "/api/authenticate")

#: the request header that carries a path exactly as the test wrote it (see ``as_sent``)
PATH_AS_SENT = "X-Test-Path-As-Sent"
_PATH_AS_SENT_ASGI = PATH_AS_SENT.lower().encode()
_PATH_AS_SENT_WSGI = "HTTP_" + PATH_AS_SENT.upper().replace("-", "_")

#: header fields a response may carry besides the middleware's: the upstream's own
_NOT_RATE_LIMIT_FIELDS = frozenset({"content-type", "content-length", UPSTREAM_HEADER.lower()})
#: how SEEDS.md spells the fields the middleware adds (HTTP names are case-insensitive)
_SPELLING = {
    name.lower(): name
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faces(*names): run an example test on these faces only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "face" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("faces")
        faces = marker.args if marker is not None else FACES
        assert set(faces) <= set(FACES), faces
        metafunc.parametrize("face", faces)


@functools.cache
def example_policy(name: str) -> Policy:
    """The validated policy of ``examples/<name>.yaml`` (immutable, so loaded once)."""
    return load_policy(EXAMPLES / f"{name}.yaml")


def with_key(headers: Mapping[str, str] | None, key: str | None) -> dict[str, str]:
    """The request's headers, with the API key in ``X-API-Key`` when there is one."""
    sent = dict(headers or {})
    if key is not None:
        sent["X-API-Key"] = key
    return sent


class ExampleApi:
    """One example policy on a fake clock and a fresh memory store, behind one face."""

    face: ClassVar[str]

    def __init__(self, name: str, start: float) -> None:
        self.name = name
        self.clock = Clock(start)
        self.store = MemoryStore(clock=self.clock)
        #: a limiter on the face's store (the HTTP faces' middleware has its own)
        self.limiter = Limiter(example_policy(name), store=self.store)

    @property
    def now(self) -> float:
        return self.clock.t

    def at(self, t: float) -> None:
        """Move the clock to epoch second ``t`` (forward only)."""
        assert t >= self.clock.t, "time only moves forward"
        self.clock.t = t

    def advance(self, seconds: float) -> None:
        self.at(self.clock.t + seconds)

    def check(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
        body: bytes = b"",
    ) -> Any:
        """Decide (or send) one request from ``ip``; ``key`` is sent as ``X-API-Key``.

        ``body`` reaches only the HTTP faces' upstream; the returned object reads
        like a :class:`PolicyDecision` on every face.
        """
        raise NotImplementedError

    def repeat(
        self,
        times: int,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
    ) -> list[Any]:
        """The answers to ``times`` identical requests sent at the same instant."""
        return [self.check(method, path, key=key, headers=headers, ip=ip) for _ in range(times)]

    def login(
        self, upstream_status: int, *, ip: str = CLIENT_IP, headers: Mapping[str, str] | None = None
    ) -> Any:
        """utmstack: a login attempt the upstream answers with ``upstream_status`` if it gets it.

        The HTTP faces send the credentials that make the upstream answer so
        (``upstreams.LOGIN_BODIES``) and the middleware feeds the status to the
        lockout; the limiter face feeds it with ``record_response``.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what the face holds (clients, event loop)."""

    @staticmethod
    def rate_headers(
        limit: int, remaining: int, reset: float, retry_after: int | None = None
    ) -> dict[str, str]:
        """The exact header fields SEEDS asks for: the trio, and ``Retry-After`` on a 429."""
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
        }
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return headers

    def refusal_timing(self, decision: Any) -> tuple[int, int]:
        """``(Retry-After, X-RateLimit-Reset)`` of a 429, checked against SEEDS's rules.

        ``Retry-After`` is whole seconds rounded up, never 0. ``X-RateLimit-Reset``
        is the instant the request could pass (``now + retry_after``) rounded up
        to a whole second: never later than ``now + Retry-After``, and equal to
        it when the clock reads a whole second.
        """
        now = self.now
        assert decision.status_code == 429
        retry_after = int(decision.headers["Retry-After"])
        reset = int(decision.headers["X-RateLimit-Reset"])
        assert retry_after >= 1
        assert retry_after - 1 < decision.retry_after <= retry_after
        assert decision.reset_at == pytest.approx(now + decision.retry_after, abs=1e-6)
        assert decision.reset_at <= reset < decision.reset_at + 1
        assert now < reset <= math.ceil(now + retry_after)
        if now == int(now):
            assert reset == now + retry_after
        return retry_after, reset


class LimiterApi(ExampleApi):
    """The face without HTTP: :meth:`Limiter.check` answers with its decision."""

    face = "limiter"

    def check(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
        body: bytes = b"",
    ) -> PolicyDecision:
        sent = with_key(headers, key)
        return self.limiter.check(method=method, path=path, headers=sent, client_ip=ip)

    def record(self, decision: PolicyDecision, status_code: int) -> list[Block]:
        """Feed the upstream's response status back (lockouts)."""
        return self.limiter.record_response(decision, status_code)

    def login(
        self, upstream_status: int, *, ip: str = CLIENT_IP, headers: Mapping[str, str] | None = None
    ) -> PolicyDecision:
        decision = self.check(*LOGIN, ip=ip, headers=headers)
        if decision.allowed:
            self.record(decision, upstream_status)
        return decision


# the HTTP faces


class DecisionSpy:
    """Catches every decision ``Limiter.check``/``AsyncLimiter.check`` returns, and the lanes'."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.decisions: list[PolicyDecision] = []
        sync_check, async_check = Limiter.check, AsyncLimiter.check

        def check(limiter: Limiter, **kwargs: Any) -> PolicyDecision:
            decision = sync_check(limiter, **kwargs)
            self.decisions.append(decision)
            return decision

        async def acheck(limiter: AsyncLimiter, **kwargs: Any) -> PolicyDecision:
            decision = await async_check(limiter, **kwargs)
            self.decisions.append(decision)
            return decision

        # a request taken by a lane (decided by its client IP alone) makes no
        # PolicyDecision: record the one the general path builds from its result
        lane_admit = Lane.admit

        def admit(lane: Lane, ip: str) -> ChargeResult:
            result = lane_admit(lane, ip)
            self.decisions.append(lane.decision(ip, result))
            return result

        monkeypatch.setattr(Limiter, "check", check)
        monkeypatch.setattr(AsyncLimiter, "check", acheck)
        monkeypatch.setattr(Lane, "admit", admit)

    def during(self, send: Callable[[], httpx.Response]) -> tuple[httpx.Response, PolicyDecision]:
        """The response to ``send()`` and the one decision the middleware made for it."""
        before = len(self.decisions)
        response = send()
        made = self.decisions[before:]
        assert len(made) == 1, f"the middleware decided {len(made)} times for one request"
        return response, made[0]


def rate_limit_fields(response: httpx.Response) -> dict[str, str]:
    """The header fields of ``response`` that are not the upstream's (nor framing), each once.

    Spelled as SEEDS.md spells them; anything unexpected keeps its wire name so
    that comparing with ``rate_headers(...)`` shows it.
    """
    fields: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        if name in _NOT_RATE_LIMIT_FIELDS:
            continue
        spelled = _SPELLING.get(name, name)
        assert spelled not in fields, f"{spelled} sent twice: {fields[spelled]!r}, {value!r}"
        fields[spelled] = value
    return fields


class HttpAnswer:
    """One HTTP response through the middleware, readable like a :class:`PolicyDecision`.

    ``status_code``, ``headers``, ``body``, ``content_type`` and ``allowed`` are
    what the client received; other attributes are the middleware's decision's.
    """

    def __init__(self, response: httpx.Response, decision: PolicyDecision) -> None:
        self.response = response
        self.decision = decision
        self.status_code = response.status_code
        #: the request reached the upstream (its answer carries ``X-Upstream``)
        self.allowed = UPSTREAM_HEADER in response.headers
        self.headers = rate_limit_fields(response)
        self.body: bytes | None = None if self.allowed else response.content
        self.content_type: str | None = (
            None if self.allowed else response.headers.get("content-type")
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decision, name)

    def __repr__(self) -> str:
        return f"HttpAnswer({self.status_code}, {self.headers}, {self.response.content!r})"


def path_as_sent(path: str) -> str:
    """``path`` (and query) percent-encoded only where HTTP requires it, dot segments kept."""
    return quote(path, safe="/?&=;:@!$'()*+,~-._%")


def as_sent_asgi(app: Any) -> Any:
    """Puts back the path a client sent as written (``curl --path-as-is``).

    httpx removes ``.`` and ``..`` segments before sending; real clients need
    not, and servers (uvicorn, gunicorn) pass such paths on unchanged. The
    test's path rides in a request header that this removes.
    """

    async def shim(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = scope["headers"]
        raw = next((value for name, value in headers if name == _PATH_AS_SENT_ASGI), None)
        if raw is not None:
            raw_path = raw.split(b"?")[0]
            scope = {
                **scope,
                "headers": [(name, value) for name, value in headers if name != _PATH_AS_SENT_ASGI],
                "raw_path": raw_path,
                "path": unquote(raw_path.decode("ascii")),
            }
        await app(scope, receive, send)

    return shim


def as_sent_wsgi(app: Any) -> Any:
    """:func:`as_sent_asgi` for WSGI: ``PATH_INFO`` is the sent path, decoded as latin-1."""

    def shim(environ: dict[str, Any], start_response: Any) -> Any:
        raw = environ.pop(_PATH_AS_SENT_WSGI, None)
        if raw is not None:
            environ["PATH_INFO"] = unquote_to_bytes(raw.split("?")[0]).decode("latin-1")
        return app(environ, start_response)

    return shim


class HttpApi(ExampleApi):
    """A face that sends real HTTP requests through the middleware to the upstream."""

    def __init__(self, name: str, start: float, spy: DecisionSpy) -> None:
        super().__init__(name, start)
        self.spy = spy

    def send(self, ip: str, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError

    def check(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
        body: bytes = b"",
    ) -> HttpAnswer:
        sent = with_key(headers, key)
        target = path_as_sent(path)
        sent[PATH_AS_SENT] = target
        request = httpx.Request(method, "http://api.example" + target, headers=sent, content=body)
        response, decision = self.spy.during(lambda: self.send(ip, request))
        got = HttpAnswer(response, decision)
        self.check_against_decision(got, request.method, path, body)
        return got

    def check_against_decision(self, got: HttpAnswer, method: str, path: str, body: bytes) -> None:
        """The wire says what the decision says; an admitted request gets the upstream's answer."""
        decision = got.decision
        response = got.response
        assert got.allowed == decision.allowed, (got, decision)
        assert got.headers == decision.headers, (got, decision)
        if "content-length" in response.headers:
            assert int(response.headers["content-length"]) == len(response.content)
        # SEEDS: Reset is integer epoch seconds; every 429 says when to retry, never "0"
        if "X-RateLimit-Reset" in got.headers:
            assert got.headers["X-RateLimit-Reset"].isdigit(), got
        if got.status_code == 429:
            assert got.headers["Retry-After"].isdigit(), got
            assert int(got.headers["Retry-After"]) >= 1, got
        if got.allowed:
            expected = answer(self.name, method, unquote(path.split("?")[0]), body)
            assert (response.status_code, response.content) == expected, (got, decision)
            assert response.headers["content-type"] == "application/json"
        else:
            assert (got.status_code, got.body, got.content_type) == (
                decision.status_code, decision.body, decision.content_type,
            ), (got, decision)  # fmt: skip

    def login(
        self, upstream_status: int, *, ip: str = CLIENT_IP, headers: Mapping[str, str] | None = None
    ) -> HttpAnswer:
        got = self.check(*LOGIN, ip=ip, headers=headers, body=LOGIN_BODIES[upstream_status])
        if got.allowed:
            assert got.status_code == upstream_status
        return got


class AsgiApi(HttpApi):
    """The ASGI middleware in front of the Starlette upstream, through ``httpx.ASGITransport``.

    The test bodies are synchronous: each request runs to completion on this
    face's own event loop. One client per client address (``scope["client"]``).
    """

    face = "asgi"

    def __init__(self, name: str, start: float, spy: DecisionSpy) -> None:
        from ratekeeper.integrations.asgi import RateLimitMiddleware

        super().__init__(name, start, spy)
        self.upstream = AsgiUpstream(name)
        self.middleware = RateLimitMiddleware(
            self.upstream, policy=example_policy(name), store=self.store
        )
        self.app = as_sent_asgi(self.middleware)
        self._runner = asyncio.Runner()
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, ip: str) -> httpx.AsyncClient:
        client = self._clients.get(ip)
        if client is None:
            transport = httpx.ASGITransport(app=self.app, client=(ip, 51000))
            client = self._clients[ip] = httpx.AsyncClient(transport=transport)
        return client

    def run(self, awaitable: Awaitable[Any]) -> Any:
        async def wait() -> Any:
            return await awaitable

        return self._runner.run(wait())

    def send(self, ip: str, request: httpx.Request) -> httpx.Response:
        return self.run(self.client(ip).send(request))  # type: ignore[no-any-return]

    def close(self) -> None:
        for client in self._clients.values():
            self.run(client.aclose())
        self._runner.close()


def _fast_loop() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (uvicorn's ``auto`` picks it too), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


class GatewayApi(HttpApi):
    """The gateway in front of the example's upstream served on loopback.

    The client reaches the gateway through ``httpx.ASGITransport`` (so each
    request says its client address, as on the other faces); the gateway
    reaches the upstream over a real connection: a uvicorn running in this
    face's own event loop, on a free port. The fake clock is the gateway's
    store's, so the documented numbers, header fields and bodies are asserted
    through the gateway exactly as through the middleware.
    """

    face = "gateway"

    def __init__(self, name: str, start: float, spy: DecisionSpy) -> None:
        from ratekeeper.gateway import build_gateway
        from support.asgi_server import serving

        super().__init__(name, start, spy)
        self.upstream = AsgiUpstream(name)
        self._runner = asyncio.Runner(loop_factory=_fast_loop())
        self._servers = contextlib.AsyncExitStack()
        self.upstream_url = self.run(
            self._servers.enter_async_context(serving(self.upstream, lifespan="off"))
        )
        self.gateway = build_gateway(example_policy(name), self.store, self.upstream_url)
        self.app = as_sent_asgi(self.gateway)
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, ip: str) -> httpx.AsyncClient:
        client = self._clients.get(ip)
        if client is None:
            transport = httpx.ASGITransport(app=self.app, client=(ip, 51000))
            client = self._clients[ip] = httpx.AsyncClient(transport=transport)
        return client

    def run(self, awaitable: Awaitable[Any]) -> Any:
        async def wait() -> Any:
            return await awaitable

        return self._runner.run(wait())

    def send(self, ip: str, request: httpx.Request) -> httpx.Response:
        return self.run(self.client(ip).send(request))  # type: ignore[no-any-return]

    def close(self) -> None:
        for client in self._clients.values():
            self.run(client.aclose())
        self.run(self.gateway.aclose())
        self.run(self._servers.aclose())
        self._runner.close()


class WsgiApi(HttpApi):
    """The WSGI middleware in front of the WSGI upstream, through ``httpx.WSGITransport``.

    One client per client address (``REMOTE_ADDR``).
    """

    face = "wsgi"

    def __init__(self, name: str, start: float, spy: DecisionSpy) -> None:
        from ratekeeper.integrations.wsgi import RateLimitMiddleware

        super().__init__(name, start, spy)
        self.upstream = WsgiUpstream(name)
        self.middleware = RateLimitMiddleware(
            self.upstream, policy=example_policy(name), store=self.store
        )
        self.app = as_sent_wsgi(self.middleware)
        self._clients: dict[str, httpx.Client] = {}

    def client(self, ip: str) -> httpx.Client:
        client = self._clients.get(ip)
        if client is None:
            transport = httpx.WSGITransport(app=self.app, remote_addr=ip)
            client = self._clients[ip] = httpx.Client(transport=transport)
        return client

    def send(self, ip: str, request: httpx.Request) -> httpx.Response:
        return self.client(ip).send(request)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


class ServiceAnswer:
    """One ``/v1/check`` answer of the decision service, readable like a :class:`PolicyDecision`.

    ``status_code``, ``allowed``, ``headers``, ``plan``, ``category``,
    ``key_id`` and ``body`` come from the service's answer; other attributes
    are the decision's.
    """

    def __init__(self, response: httpx.Response, decision: PolicyDecision) -> None:
        self.response = response
        self.decision = decision
        self.json: dict[str, Any] = response.json()
        self.status_code = response.status_code
        self.allowed: bool = self.json["allowed"]
        self.headers: dict[str, str] = self.json["headers"]
        self.plan = self.json["plan"]
        self.category = self.json["category"]
        self.key_id = self.json["key_id"]
        body = self.json["body"]
        self.body: bytes | None = None
        if body is not None:
            self.body = (json.dumps(body) if not isinstance(body, str) else body).encode()
        self.content_type = decision.content_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decision, name)

    def __repr__(self) -> str:
        return f"ServiceAnswer({self.status_code}, {self.json})"


class ServiceApi(ExampleApi):
    """The decision service's app (``build_app``) through ``httpx.ASGITransport``.

    The service decides on the face's store, so the fake clock rules it too.
    """

    face = "service"

    def __init__(self, name: str, start: float, spy: DecisionSpy) -> None:
        from ratekeeper.server.app import build_app
        from ratekeeper.server.service import Service

        super().__init__(name, start)
        self.spy = spy
        self.service = Service(
            store=self.store, policy=example_policy(name), policy_path=EXAMPLES / f"{name}.yaml"
        )
        transport = httpx.ASGITransport(app=build_app(self.service))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://ratekeeper")
        self._runner = asyncio.Runner()

    def post(self, path: str, body: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self.client.post(path, json=body)

        return self._runner.run(send())

    @staticmethod
    def call(
        method: str, path: str, key: str | None, headers: Mapping[str, str] | None, ip: str
    ) -> dict[str, Any]:
        """The ``/v1/check`` JSON of a request (path decoded and without its query, as ASGI)."""
        return {
            "method": method,
            "path": unquote(path.split("?")[0]),
            "headers": with_key(headers, key),
            "client_ip": ip,
        }

    def check(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        ip: str = CLIENT_IP,
        body: bytes = b"",
    ) -> ServiceAnswer:
        call = self.call(method, path, key, headers, ip)
        response, decision = self.spy.during(lambda: self.post("/v1/check", call))
        got = ServiceAnswer(response, decision)
        self.check_against_decision(got)
        lease = got.json["lease"]
        if lease is not None:  # the upstream has answered: give the slots back, as middleware
            released = self.post("/v1/release", {"lease": lease})
            assert released.status_code == 200, released.text
            assert released.json()["released"] >= 1
        return got

    def check_against_decision(self, got: ServiceAnswer) -> None:
        """The service's JSON says what the decision says, and names no counter key."""
        decision, answer = got.decision, got.json
        assert got.status_code == answer["status"] == decision.status_code, got
        assert got.allowed == decision.allowed, got
        assert got.headers == decision.headers, got
        assert (got.plan, got.category, got.key_id) == (
            decision.plan, decision.category, decision.key_id,
        ), got  # fmt: skip
        if decision.allowed:
            assert answer["body"] is None, got
        elif decision.content_type is not None and "json" in decision.content_type:
            assert decision.body is not None
            assert answer["body"] == json.loads(decision.body), got
        assert answer["lease"] is None or decision.allowed, got
        if answer["limits"]:
            assert answer["reset"] == math.ceil(decision.reset_at), got
        if got.status_code == 429:
            assert answer["retry_after"] == int(got.headers["Retry-After"]), got
        for status in decision.statuses:
            assert status.key not in got.response.text, got

    def login(
        self, upstream_status: int, *, ip: str = CLIENT_IP, headers: Mapping[str, str] | None = None
    ) -> ServiceAnswer:
        """A login, and the upstream's status reported to the service when it got through."""
        got = self.check(*LOGIN, ip=ip, headers=headers)
        if got.allowed:
            report = {**self.call(*LOGIN, None, headers, ip), "status": upstream_status}
            response = self.post("/v1/report", report)
            assert response.status_code == 200, response.text
        return got

    def close(self) -> None:
        self._runner.run(self.client.aclose())
        self._runner.close()


ExampleFactory = Callable[[str, float], Any]


@pytest.fixture
def example(face: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ExampleFactory]:
    """``example(name, start)``: a fresh face of example ``name`` whose clock reads ``start``."""
    made: list[ExampleApi] = []
    spy = DecisionSpy(monkeypatch) if face != "limiter" else None
    if face in ("asgi", "service", "gateway") and importlib.util.find_spec("sniffio") is None:
        # httpx's ASGITransport imports sniffio on every request to ask for trio;
        # without it each request pays a failed import that searches sys.path
        # (most of a request's cost). ``None`` in sys.modules fails it at once.
        monkeypatch.setitem(sys.modules, "sniffio", None)

    def make(name: str, start: float) -> ExampleApi:
        api: ExampleApi
        if face == "asgi":
            assert spy is not None
            api = AsgiApi(name, start, spy)
        elif face == "wsgi":
            assert spy is not None
            api = WsgiApi(name, start, spy)
        elif face == "service":
            assert spy is not None
            api = ServiceApi(name, start, spy)
        elif face == "gateway":
            assert spy is not None
            api = GatewayApi(name, start, spy)
        else:
            api = LimiterApi(name, start)
        made.append(api)
        return api

    yield make
    for api in reversed(made):
        api.close()
