"""``GET /v1/authorize``: the forward-auth route, asked as nginx, Traefik and Caddy ask it.

The route is mounted on a bare Starlette app over a real :class:`AsyncLimiter`
on a memory store and a fake clock (exact numbers); requests go through
httpx's ASGI transport from a chosen peer address. What a proxy does with the
answers is in ``tests/proxies/`` (real nginx and Caddy).
"""

from __future__ import annotations

import contextlib
import json
import socket
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette

from ratekeeper import AsyncLimiter, MemoryStore, Policy, load_policy
from ratekeeper.policy import policy_from_text
from ratekeeper.server.authorize import ForwardedRequestError, authorize_route, forwarded_request
from ratekeeper.stores import RedisStore
from support.clock import Clock

EXAMPLES = Path(__file__).parents[2] / "examples"
T0 = 1_700_000_040.0  # a minute boundary
PROXY = "127.0.0.1"  # the examples' trusted proxy: the peer of every request here unless said
CLIENT, OTHER = "198.51.100.9", "198.51.100.10"
STARTER = {"X-API-Key": "demo-starter"}
ORIGINAL = ("X-Original-Method", "X-Original-URI")  # nginx (the shipped config sets them)
FORWARDED = ("X-Forwarded-Method", "X-Forwarded-Uri")  # Traefik, Caddy
FLOWCMS_DOCS = "https://docs.flowcms.io/rate-limits"

#: 1 per minute per client IP, the refusal naming the IP it counted
BY_IP = """\
version: 1
name: by-ip
identity:
  trusted_proxies: [127.0.0.1/32]
limits:
  api: {by: ip, rate: 1/minute, algorithm: fixed_window}
categories:
  - {name: api, match: /api/**, charge: [api]}
responses:
  rate_limited:
    status: 429
    body: {error: too_many, ip: "{ip}"}
"""


NO_URI = (
    "missing X-Original-URI (nginx) or X-Forwarded-Uri (Traefik, Caddy): "
    "the proxy must say which request to decide"
)


def flowcms_429(retry_after: int) -> dict[str, object]:
    return {
        "error": {
            "code": "RATE_LIMIT_EXCEEDED",
            "message": "You have exceeded your API rate limit. "
            f"Please retry after {retry_after} seconds.",
            "retry_after": retry_after,
            "docs_url": FLOWCMS_DOCS,
        }
    }


def invalid(message: str) -> dict[str, object]:
    return {"error": {"code": "invalid_request", "message": message}}


class Route:
    """The route over one policy, asked from a peer; ``service.limiter`` can be swapped."""

    def __init__(self, policy: Policy, store: MemoryStore | RedisStore) -> None:
        self.service = SimpleNamespace(policy=policy, limiter=AsyncLimiter(policy, store))
        self.app = Starlette(routes=[authorize_route(self.service)])

    async def ask(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str] | None = None,
        *,
        pair: tuple[str, str] = ORIGINAL,
        peer: str = PROXY,
        query: str = "",
    ) -> httpx.Response:
        """Ask about ``method uri`` as a proxy at ``peer`` asks, in the headers of ``pair``."""
        sent = {pair[0]: method, pair[1]: uri, **(headers or {})}
        return await self.send(sent, peer=peer, query=query)

    async def send(
        self,
        headers: Mapping[str, str] | list[tuple[str, str]] | list[tuple[bytes, bytes]],
        *,
        peer: str = PROXY,
        query: str = "",
        method: str = "GET",
    ) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://ratekeeper") as client:
            return await client.request(method, "/v1/authorize" + query, headers=headers)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def flowcms(clock: Clock) -> Route:
    return Route(load_policy(EXAMPLES / "flowcms.yaml"), MemoryStore(clock=clock))


def fields(response: httpx.Response) -> dict[str, str]:
    """Every header field of the answer, once each (a repeat would fail here)."""
    found: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        assert name not in found, f"{name} sent twice"
        found[name] = value
    return found


def trio(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(reset)),
    }


# what the proxy is told


@pytest.mark.parametrize("pair", [ORIGINAL, FORWARDED], ids=["nginx", "traefik-caddy"])
async def test_the_first_60_starter_requests_get_200_with_the_trio_and_the_61st_the_policy_429(
    flowcms: Route, pair: tuple[str, str]
) -> None:
    passed = [await flowcms.ask("GET", "/api/pages", STARTER, pair=pair) for _ in range(60)]
    refused = await flowcms.ask("GET", "/api/pages", STARTER, pair=pair)

    for sent, response in enumerate(passed, start=1):
        assert response.status_code == 200
        assert fields(response) == {**trio(60, 60 - sent, T0 + 120), "content-length": "0"}
        assert response.content == b""
    # the 60 weigh on the next minute until 1 s into it (sliding window)
    assert refused.status_code == 429
    body = json.dumps(flowcms_429(61)).encode()
    assert fields(refused) == {
        **trio(60, 0, T0 + 61),
        "retry-after": "61",
        "content-type": "application/json",
        "content-length": str(len(body)),
    }
    assert refused.content == body


async def test_an_unknown_key_gets_the_policy_401(flowcms: Route) -> None:
    response = await flowcms.ask("GET", "/graphql", {"Authorization": "Bearer nope"})

    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "UNAUTHORIZED",
            "message": "A valid API key is required.",
            "docs_url": FLOWCMS_DOCS,
        }
    }
    assert "retry-after" not in response.headers


async def test_an_exempt_path_gets_200_without_header_fields_and_counts_nothing(
    flowcms: Route,
) -> None:
    exempt = await flowcms.ask("POST", "/webhooks/deploy", STARTER)
    counted = await flowcms.ask("GET", "/api/pages", STARTER)

    assert (exempt.status_code, fields(exempt), exempt.content) == (
        200,
        {"content-length": "0"},
        b"",
    )
    assert counted.headers["x-ratelimit-remaining"] == "59"


async def test_the_key_is_read_from_the_policy_s_key_headers_and_bearer(flowcms: Route) -> None:
    by_header = await flowcms.ask("GET", "/api/pages", {"X-API-Key": "demo-professional"})
    by_bearer = await flowcms.ask("GET", "/api/pages", {"Authorization": "Bearer demo-starter"})

    assert by_header.headers["x-ratelimit-limit"] == "1000"
    assert by_bearer.headers["x-ratelimit-limit"] == "60"


async def test_the_method_is_the_forwarded_one(clock: Clock) -> None:
    policy = load_policy(EXAMPLES / "utmstack.yaml")
    route = Route(policy, MemoryStore(clock=clock))

    # POST /api/authenticate is the login category (no key needed); GET is general API
    login = await route.ask("POST", "/api/authenticate")
    general = await route.ask("GET", "/api/authenticate")

    assert login.status_code == 200
    assert general.status_code == 401


# the URI


@pytest.mark.parametrize(
    "uri",
    [
        "/api/%61uth/login",
        "/api/auth/login?next=/api/pages",
        "/api/auth/%6C%6F%67%69%6E#top",
        "http://cms.example/api/auth/login?x=1",
    ],
)
async def test_the_uri_is_percent_decoded_and_its_query_dropped_before_routing(
    flowcms: Route, uri: str
) -> None:
    # /api/auth/** is 10 a minute per client IP and needs no key; /api/** needs one
    response = await flowcms.ask("POST", uri)

    assert response.status_code == 200
    assert response.headers["x-ratelimit-limit"] == "10"


async def test_a_path_with_utf_8_percent_escapes_or_raw_bytes_is_decided(flowcms: Route) -> None:
    escaped = await flowcms.ask("GET", "/api/pages/caf%C3%A9", STARTER)
    raw = await flowcms.send(
        [
            (b"x-original-method", b"GET"),
            (b"x-original-uri", "/api/pages/café".encode()),
            (b"x-api-key", b"demo-starter"),
        ]
    )

    assert (escaped.status_code, escaped.headers["x-ratelimit-remaining"]) == (200, "59")
    assert (raw.status_code, raw.headers["x-ratelimit-remaining"]) == (200, "58")


@pytest.mark.parametrize(
    ("raw_uri", "shown"),
    [
        (b"/api/pages/%FF", "'/api/pages/%FF'"),
        (b"/api/caf%C3", "'/api/caf%C3'"),
        (b"/api/\xff\xfe", "'/api/\\xff\\xfe'"),
    ],
)
async def test_a_path_that_is_not_utf_8_gets_400_and_counts_nothing(
    flowcms: Route, raw_uri: bytes, shown: str
) -> None:
    refused = await flowcms.send(
        [
            (b"x-original-method", b"GET"),
            (b"x-original-uri", raw_uri),
            (b"x-api-key", b"demo-starter"),
        ]
    )
    counted = await flowcms.ask("GET", "/api/pages", STARTER)

    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    message = f"X-Original-URI is not UTF-8 once percent-decoded: {shown}"
    assert refused.json() == invalid(message)
    assert counted.headers["x-ratelimit-remaining"] == "59"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, NO_URI),
        ({"X-Original-Method": "GET"}, NO_URI),
        ({"X-Original-URI": "/api/pages"}, "missing X-Original-Method"),
        ({"X-Forwarded-Uri": "/api/pages"}, "missing X-Forwarded-Method"),
        # the method comes from the URI's pair
        ({"X-Original-URI": "/api/pages", "X-Forwarded-Method": "GET"},
         "missing X-Original-Method"),
        ({"X-Original-URI": "/api/pages", "X-Original-Method": "GET / HTTP/1.1"},
         "X-Original-Method is not an HTTP method"),
        ({"X-Original-URI": "pages", "X-Original-Method": "GET"},
         "X-Original-URI is not a request path: 'pages'"),
        ({"X-Forwarded-Uri": "cms.example/api", "X-Forwarded-Method": "GET"},
         "X-Forwarded-Uri is not a request path: 'cms.example/api'"),
        # one pair is the proxy's, the other the client's: never decide on the client's word
        ({"X-Original-URI": "/api/pages", "X-Original-Method": "GET",
          "X-Forwarded-Uri": "/webhooks/x", "X-Forwarded-Method": "GET"},
         "X-Original-URI and X-Forwarded-Uri disagree: the proxy writes one, the other is "
         "the client's (drop it in the proxy's config)"),
        ({"X-Forwarded-Uri": "/api/pages", "X-Forwarded-Method": "POST",
          "X-Original-Method": "GET"},
         "X-Forwarded-Method and X-Original-Method disagree: the proxy writes one, the other "
         "is the client's (drop it in the proxy's config)"),
    ],
)  # fmt: skip
async def test_a_request_the_headers_do_not_name_gets_400_with_a_json_error(
    flowcms: Route, headers: dict[str, str], message: str
) -> None:
    response = await flowcms.send({**headers, **STARTER})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == invalid(message)


async def test_both_pairs_agreeing_are_decided(flowcms: Route) -> None:
    both = {"X-Original-URI": "/api/pages", "X-Forwarded-Uri": "/api/pages",
            "X-Original-Method": "GET", "X-Forwarded-Method": "GET"}  # fmt: skip
    response = await flowcms.send({**both, **STARTER})

    assert (response.status_code, response.headers["x-ratelimit-remaining"]) == (200, "59")


async def test_a_uri_header_sent_twice_with_two_values_gets_400(flowcms: Route) -> None:
    response = await flowcms.send(
        [
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/api/pages"),
            ("X-Original-URI", "/webhooks/x"),
            ("X-API-Key", "demo-starter"),
        ]
    )

    assert response.status_code == 400
    assert response.json() == invalid("X-Original-URI sent twice, with two values")


def test_forwarded_request_reads_the_pair_the_uri_header_names() -> None:
    assert forwarded_request([(b"x-forwarded-method", b"PATCH"),
                              (b"x-forwarded-uri", b"/a%20b?c")]) == ("PATCH", "/a b")  # fmt: skip
    with pytest.raises(ForwardedRequestError, match="missing X-Forwarded-Method"):
        forwarded_request([(b"x-forwarded-uri", b"/"), (b"x-original-method", b"GET")])


# the client address


async def test_the_client_is_read_from_the_forwarding_header_of_a_trusted_proxy(
    clock: Clock,
) -> None:
    route = Route(policy_from_text(BY_IP, name="by-ip"), MemoryStore(clock=clock))

    first = await route.ask("GET", "/api/a", {"X-Forwarded-For": CLIENT})
    other = await route.ask("GET", "/api/a", {"X-Forwarded-For": f"{CLIENT}, {OTHER}"})
    again = await route.ask("GET", "/api/a", {"X-Forwarded-For": CLIENT})

    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)
    assert again.json() == {"error": "too_many", "ip": CLIENT}


async def test_the_forwarding_header_of_an_untrusted_peer_is_not_believed(clock: Clock) -> None:
    route = Route(policy_from_text(BY_IP, name="by-ip"), MemoryStore(clock=clock))
    peer = "203.0.113.50"

    first = await route.ask("GET", "/api/a", {"X-Forwarded-For": CLIENT}, peer=peer)
    again = await route.ask("GET", "/api/a", {"X-Forwarded-For": OTHER}, peer=peer)
    client = await route.ask("GET", "/api/a", {"X-Forwarded-For": CLIENT})

    assert (first.status_code, again.status_code) == (200, 429)
    assert again.json() == {"error": "too_many", "ip": peer}
    assert client.status_code == 200  # CLIENT itself was never counted


# ?deny_status=403 (nginx)


async def test_deny_status_403_answers_a_429_as_403_saying_429(flowcms: Route) -> None:
    for _ in range(60):
        await flowcms.ask("GET", "/api/pages", STARTER, query="?deny_status=403")
    passed_before = await flowcms.ask("GET", "/webhooks/x", query="?deny_status=403")
    refused = await flowcms.ask("GET", "/api/pages", STARTER, query="?deny_status=403")

    assert (passed_before.status_code, fields(passed_before)) == (200, {"content-length": "0"})
    assert refused.status_code == 403
    body = json.dumps(flowcms_429(61)).encode()
    assert fields(refused) == {
        **trio(60, 0, T0 + 61),
        "retry-after": "61",
        "content-type": "application/json",
        "content-length": str(len(body)),
        "x-ratekeeper-status": "429",
    }
    assert refused.content == body


async def test_deny_status_403_answers_a_401_and_a_400_as_403_saying_which(
    flowcms: Route,
) -> None:
    unknown = await flowcms.ask(
        "GET", "/api/pages", {"X-API-Key": "nope"}, query="?deny_status=403"
    )
    bad_path = await flowcms.ask("GET", "/api/%FF", STARTER, query="?deny_status=403")

    assert (unknown.status_code, unknown.headers["x-ratekeeper-status"]) == (403, "401")
    assert unknown.json()["error"]["code"] == "UNAUTHORIZED"
    assert (bad_path.status_code, bad_path.headers["x-ratekeeper-status"]) == (403, "400")
    assert bad_path.json() == invalid(
        "X-Original-URI is not UTF-8 once percent-decoded: '/api/%FF'"
    )


async def test_deny_status_403_answers_a_store_failing_closed_as_403_saying_503() -> None:
    policy = load_policy(EXAMPLES / "flowcms.yaml")
    with _nobody_listening() as port:
        store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", on_error="closed")
        route = Route(policy, store)
        plain = await route.ask("GET", "/api/pages", STARTER)
        denied = await route.ask("GET", "/api/pages", STARTER, query="?deny_status=403")

    assert (plain.status_code, plain.headers["retry-after"]) == (503, "1")
    assert "x-ratekeeper-status" not in plain.headers
    assert (denied.status_code, denied.headers["x-ratekeeper-status"]) == (403, "503")
    assert denied.headers["retry-after"] == "1"
    assert denied.content == plain.content


@pytest.mark.parametrize("query", ["?deny_status=500", "?deny_status=403&deny_status=401"])
async def test_a_deny_status_other_than_403_gets_400(flowcms: Route, query: str) -> None:
    response = await flowcms.ask("GET", "/api/pages", STARTER, query=query)
    counted = await flowcms.ask("GET", "/api/pages", STARTER)

    assert response.status_code == 400
    assert response.json() == invalid("deny_status must be 403 (nginx passes on 403)")
    assert counted.headers["x-ratelimit-remaining"] == "59"


async def test_other_query_parameters_are_ignored(flowcms: Route) -> None:
    response = await flowcms.ask("GET", "/api/pages", STARTER, query="?proxy=nginx")

    assert response.status_code == 200


# what forward-auth does not do


async def test_no_concurrency_lease_is_taken(flowcms: Route) -> None:
    # the starter cap is 5 concurrent requests: forward-auth never hears when one ends,
    # so it takes no lease, and a sixth is not refused (docs/forward-auth.md)
    answers = [await flowcms.ask("GET", "/api/pages", STARTER) for _ in range(10)]

    assert [response.status_code for response in answers] == [200] * 10


async def test_no_failed_login_is_counted_but_a_block_recorded_elsewhere_is_honoured(
    clock: Clock,
) -> None:
    policy = load_policy(EXAMPLES / "utmstack.yaml")
    store = MemoryStore(clock=clock)
    route = Route(policy, store)
    forwarded = {"X-Forwarded-For": CLIENT}

    logins = [await route.ask("POST", "/api/authenticate", forwarded) for _ in range(8)]
    # the gateway or /v1/report feed the upstream's 401s to the lockout, on the same store
    gateway = AsyncLimiter(policy, store)
    for _ in range(5):
        decision = await gateway.check(method="POST", path="/api/authenticate", client_ip=CLIENT)
        await gateway.record_response(decision, 401)
    blocked = await route.ask("POST", "/api/authenticate", forwarded)

    assert [response.status_code for response in logins] == [200] * 8
    assert blocked.status_code == 429
    assert blocked.json()["message"] == (
        f"Authentication blocked: IP {CLIENT} exceeded login attempt threshold"
    )
    assert blocked.headers["retry-after"] == "900"


# the route itself


async def test_the_limiter_is_read_on_every_request(flowcms: Route, clock: Clock) -> None:
    before = await flowcms.ask("GET", "/api/pages", STARTER)
    stricter = policy_from_text(
        textwrap.dedent(
            """\
            version: 1
            name: stricter
            limits:
              api: {by: ip, rate: 5/minute}
            categories:
              - {name: api, match: /api/**, charge: [api]}
            """
        ),
        name="stricter",
    )
    flowcms.service.limiter = AsyncLimiter(stricter, MemoryStore(clock=clock))
    after = await flowcms.ask("GET", "/api/pages", STARTER)

    assert before.headers["x-ratelimit-limit"] == "60"
    assert after.headers["x-ratelimit-limit"] == "5"


async def test_head_is_answered_like_get_without_a_body(flowcms: Route) -> None:
    response = await flowcms.send(
        {"X-Original-Method": "GET", "X-Original-URI": "/api/pages", "X-API-Key": "nope"},
        method="HEAD",
    )

    assert response.status_code == 401
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


async def test_other_methods_are_not_allowed(flowcms: Route) -> None:
    response = await flowcms.send(
        {"X-Original-Method": "GET", "X-Original-URI": "/api/pages", **STARTER}, method="POST"
    )
    counted = await flowcms.ask("GET", "/api/pages", STARTER)

    assert response.status_code == 405
    assert counted.headers["x-ratelimit-remaining"] == "59"


# helpers


@contextlib.contextmanager
def _nobody_listening() -> Iterator[int]:
    """A loopback port bound but not listening: a connection to it is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound:
        bound.bind(("127.0.0.1", 0))
        yield int(bound.getsockname()[1])
