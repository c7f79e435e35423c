"""Which header fields cross the gateway: the pure functions, field by field."""

from __future__ import annotations

import pytest

from ratekeeper.gateway import request_headers, response_headers

HOP = [
    (b"connection", b"keep-alive, X-Named"),
    (b"x-named", b"1"),
    (b"keep-alive", b"timeout=5"),
    (b"proxy-authorization", b"Basic c2VjcmV0"),
    (b"proxy-connection", b"keep-alive"),
    (b"te", b"trailers"),
    (b"trailer", b"x-checksum"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"websocket"),
]


def test_hop_by_hop_request_fields_and_those_connection_names_are_dropped() -> None:
    sent = [(b"host", b"api.example"), *HOP, (b"x-end-to-end", b"kept")]
    assert request_headers(sent, client="203.0.113.7", scheme="https") == [
        (b"x-end-to-end", b"kept"),
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"api.example"),
    ]


def test_the_client_is_appended_to_every_x_forwarded_for_line_and_proto_replaced() -> None:
    sent = [
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-for", b" 198.51.100.2, 10.0.0.1 "),
    ]
    assert request_headers(sent, client="127.0.0.1", scheme="http") == [
        (b"x-forwarded-for", b"198.51.100.1, 198.51.100.2, 10.0.0.1, 127.0.0.1"),
        (b"x-forwarded-proto", b"http"),
    ]


def test_without_a_client_address_x_forwarded_for_is_kept_as_sent() -> None:
    sent = [(b"x-forwarded-for", b"198.51.100.1")]
    assert request_headers(sent, client=None, scheme="http") == [
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-proto", b"http"),
    ]


@pytest.mark.parametrize("preserve_host", [False, True])
def test_host_is_the_upstream_s_unless_preserved(preserve_host: bool) -> None:
    sent = [(b"host", b"api.example"), (b"x-forwarded-host", b"spoofed.example")]
    out = dict(request_headers(sent, client="203.0.113.7", scheme="http",
                               preserve_host=preserve_host))  # fmt: skip
    if preserve_host:
        assert (out[b"host"], out[b"x-forwarded-host"]) == (b"api.example", b"spoofed.example")
    else:
        assert b"host" not in out  # the upstream's own name is written by the client library
        assert out[b"x-forwarded-host"] == b"api.example"


def test_hop_by_hop_response_fields_are_dropped_and_names_lower_cased() -> None:
    answered = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"X-Named"),
        (b"X-Named", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"X-RateLimit-Limit", b"5000"),
    ]
    assert response_headers(answered) == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-ratelimit-limit", b"5000"),
    ]
