"""Routes: path patterns, path normalization and the router that picks a category.

A request meets the limits of the path the application will serve; spelling
that path differently (``/api//scans/``, ``/api/x/../scans``, a query string)
must not move it to another category or out of every category.
"""

from __future__ import annotations

import pytest

from ratekeeper.policy.compiler import compile_policy
from ratekeeper.policy.model import Route
from ratekeeper.policy.patterns import (
    CompiledPattern,
    PatternError,
    compile_pattern,
    normalize_path,
)
from ratekeeper.policy.router import Router
from ratekeeper.policy.schema import build_policy


def route(text: str) -> Route:
    """``"GET|POST /path"`` or ``"/path"`` (any method), as policies write routes."""
    methods, _, pattern = text.rpartition(" ")
    return Route(frozenset(methods.split("|")) if methods else None, pattern)


def router(*routes: str) -> Router[str]:
    """A router whose target is each route's own text."""
    return Router((route(text), text) for text in routes)


def matches(pattern: str, path: str) -> bool:
    compiled = compile_pattern(pattern)
    if compiled.exact is not None:
        return path == compiled.exact
    assert compiled.regex is not None
    return compiled.regex.match(path) is not None


# compile_pattern


@pytest.mark.parametrize(
    ("pattern", "exact"),
    [("/api/servers", "/api/servers"), ("/api/servers/", "/api/servers"), ("/", "/")],
)
def test_a_literal_pattern_compiles_to_an_exact_path_without_its_trailing_slash(
    pattern: str, exact: str
) -> None:
    assert compile_pattern(pattern) == CompiledPattern(pattern.rstrip("/") or "/", exact, None, ())


def test_a_parameter_captures_one_whole_segment() -> None:
    compiled = compile_pattern("/agents/{node}/metrics/{kind}")
    assert compiled.regex is not None

    found = compiled.regex.match("/agents/edge-1/metrics/cpu")

    assert compiled.exact is None
    assert compiled.params == ("node", "kind")
    assert found is not None
    assert found.groupdict() == {"node": "edge-1", "kind": "cpu"}
    assert not matches("/agents/{node}/metrics/{kind}", "/agents/a/b/metrics/cpu")
    assert not matches("/agents/{node}/metrics/{kind}", "/agents//metrics/cpu")


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/files/capture.pcap", True),
        ("/files/.pcap", True),
        ("/files/a.b.pcap", True),
        ("/files/dir/capture.pcap", False),
        ("/files/capture.pcapng", False),
        ("/files/capture-pcap", False),
        ("/files", False),
    ],
)
def test_a_star_matches_within_one_segment_only(path: str, matched: bool) -> None:
    assert matches("/files/*.pcap", path) is matched


@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/api", True),
        ("/api/scans", True),
        ("/api/scans/42/results", True),
        ("/apis", False),
        ("/apix/scans", False),
        ("/v1/api", False),
        ("/", False),
    ],
)
def test_a_double_star_matches_the_prefix_and_everything_below_it(path: str, matched: bool) -> None:
    assert matches("/api/**", path) is matched


@pytest.mark.parametrize("path", ["/", "/api", "/a/b/c"])
def test_a_lone_double_star_matches_every_path(path: str) -> None:
    assert matches("/**", path)


def test_regex_characters_in_a_pattern_are_literal() -> None:
    assert matches("/v1.0/*+x", "/v1.0/a+x")
    assert not matches("/v1.0/*+x", "/v1x0/a+x")
    assert not matches("/v1.0/*+x", "/v1.0/aax")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("api/scans", "must start with '/'"),
        ("", "must start with '/'"),
        ("/api/**/scans", "'\\*\\*' may only end a pattern"),
        ("/api/x**", "'\\*\\*' must be a whole segment"),
        ("/api/**x", "'\\*\\*' must be a whole segment"),
        ("/api/{id}x", "a parameter is a whole segment"),
        ("/api/{id", "a parameter is a whole segment"),
        ("/api/{}", "a parameter is a whole segment"),
        ("/api/{1st}", "a parameter is a whole segment"),
        ("/api/{id}/x/{id}", "parameter \\{id\\} appears twice"),
    ],
)
def test_a_pattern_error_says_what_is_wrong(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        compile_pattern(pattern)


def test_a_pattern_error_is_a_value_error() -> None:
    assert issubclass(PatternError, ValueError)


def test_a_double_star_matches_a_rest_that_holds_a_newline() -> None:
    assert matches("/api/**", "/api/scans\n")
    assert matches("/api/**", "/api/x\ny")


# normalize_path


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        ("/api/scans", "/api/scans"),
        ("/api/scans/", "/api/scans"),
        ("/api/scans//", "/api/scans"),
        ("/api//scans", "/api/scans"),
        ("//api///scans", "/api/scans"),
        ("/api/./scans", "/api/scans"),
        ("/api/scans/.", "/api/scans"),
        ("/api/x/../scans", "/api/scans"),
        ("/api/x/y/../../scans", "/api/scans"),
        ("/api/scans/..", "/api"),
        ("/../api/scans", "/api/scans"),
        ("/../../..", "/"),
        ("/api/scans?x=1", "/api/scans"),
        ("/api/scans/?next=/admin/../x", "/api/scans"),
        ("/api//scans/?", "/api/scans"),
        ("/", "/"),
        ("", "/"),
        ("?x=1", "/"),
    ],
)
def test_normalize_path_removes_queries_repeated_and_trailing_slashes_and_dot_segments(
    path: str, normal: str
) -> None:
    assert normalize_path(path) == normal


@pytest.mark.parametrize("path", ["/api/.well-known", "/api/..hidden", "/api/a.../b", "/a/.b./c"])
def test_normalize_path_keeps_segments_that_only_contain_dots(path: str) -> None:
    assert normalize_path(path) == path


@pytest.mark.parametrize("path", ["/api/scans", "/api/x/../scans/", "/", "/a//b/./c/"])
def test_normalize_path_is_idempotent(path: str) -> None:
    once = normalize_path(path)
    assert normalize_path(once) == once


def test_normalize_path_drops_control_characters() -> None:
    assert normalize_path("/api/scans\n") == "/api/scans"
    assert normalize_path("/api/sc\x00ans") == "/api/scans"


# Router


def test_an_exact_route_wins_over_an_earlier_pattern() -> None:
    routes = router("/api/**", "/api/servers")

    assert routes.match("GET", "/api/servers") == ("/api/servers", {})
    assert routes.match("GET", "/api/servers/7") == ("/api/**", {})


def test_patterns_are_tried_in_the_order_the_policy_lists_them() -> None:
    routes = router("/api/auth/**", "/api/**", "/api/auth/login")

    assert routes.match("POST", "/api/auth/token") == ("/api/auth/**", {})
    assert routes.match("POST", "/api/auth/login") == ("/api/auth/login", {})
    assert router("/api/**", "/api/auth/**").match("POST", "/api/auth/token") == ("/api/**", {})


def test_a_method_filter_on_an_exact_route_lets_other_methods_fall_through_to_patterns() -> None:
    routes = router("GET /api/servers", "POST /api/scans", "/api/**")

    assert routes.match("GET", "/api/servers") == ("GET /api/servers", {})
    assert routes.match("POST", "/api/servers") == ("/api/**", {})
    assert routes.match("HEAD", "/api/servers") == ("/api/**", {})
    assert routes.match("GET", "/api/scans") == ("/api/**", {})


def test_one_exact_path_can_route_each_method_elsewhere() -> None:
    routes = router("GET /api/scans", "POST|PUT /api/scans")

    assert routes.match("GET", "/api/scans") == ("GET /api/scans", {})
    assert routes.match("PUT", "/api/scans") == ("POST|PUT /api/scans", {})
    assert routes.match("DELETE", "/api/scans") is None


def test_a_method_filter_on_a_pattern_skips_to_the_next_pattern() -> None:
    routes = router("POST /api/agent/{kind}", "/api/**")

    assert routes.match("POST", "/api/agent/heartbeat") == (
        "POST /api/agent/{kind}",
        {"kind": "heartbeat"},
    )
    assert routes.match("GET", "/api/agent/heartbeat") == ("/api/**", {})


def test_a_route_without_methods_admits_every_method() -> None:
    routes = router("/api/**")

    for method in ("GET", "POST", "PATCH", "OPTIONS", "PROPFIND"):
        assert routes.match(method, "/api/x") == ("/api/**", {})


def test_no_matching_route_is_none() -> None:
    routes = router("GET /api/servers", "/api/**")

    assert routes.match("GET", "/health") is None
    assert routes.match("GET", "/apiary") is None


def test_the_router_counts_its_routes() -> None:
    assert len(router("GET /a", "POST /a", "/b/**", "/c/{id}")) == 4
    assert len(Router[str](())) == 0


def test_an_invalid_pattern_is_refused_when_the_router_is_built() -> None:
    with pytest.raises(PatternError):
        router("/api/**/x")


# normalization and routing together: the scanner's categories


SCANNER_ROUTES = {
    "version": 1,
    "limits": {"api": {"by": "ip", "rate": "30/minute"}, "scans": {"by": "ip", "rate": "5/hour"}},
    "categories": [
        {"name": "listing", "match": "GET /api/servers", "charge": ["api"]},
        {"name": "scans", "match": "POST /api/scans", "charge": ["api", "scans"]},
        {"name": "api", "match": "/api/**", "charge": ["api"]},
    ],
}


@pytest.mark.parametrize(
    "path",
    [
        "/api/scans",
        "/api/scans/",
        "/api//scans",
        "//api/scans",
        "/api/./scans",
        "/api/servers/../scans",
        "/api/x/y/../../scans",
        "/api/scans?priority=high",
        "/api/scans/?",
    ],
)
def test_path_tricks_do_not_move_a_scan_out_of_the_scans_category(path: str) -> None:
    compiled = compile_policy(build_policy(SCANNER_ROUTES))

    found = compiled.router.match("POST", normalize_path(path))

    assert found is not None
    assert found[0].name == "scans"


@pytest.mark.parametrize("path", ["/api/scans/../../health", "/api/..", "/api/../api/../x"])
def test_dot_segments_that_leave_the_api_leave_its_limits(path: str) -> None:
    compiled = compile_policy(build_policy(SCANNER_ROUTES))

    assert compiled.router.match("GET", normalize_path(path)) is None
