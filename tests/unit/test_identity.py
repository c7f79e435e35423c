"""Who is calling: the API key presented and the client's real address.

The forwarding header the policy's proxies write (``X-Forwarded-For``,
``Forwarded`` or ``X-Real-IP``) is believed only from a trusted proxy, and
only as far back as the chain of trusted proxies goes; the other forwarding
headers are never read; anything malformed ends the walk, so a client can
never choose the address it is limited by. Header names reach these functions
lower-cased (``lower_headers``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from ratekeeper.identity import ClientAddresses, ClientIpResolver, api_key_from, lower_headers

KEY_HEADERS = ("x-api-key",)
CLIENT = "203.0.113.7"
PROXY = "127.0.0.1"
UNTRUSTED = "198.51.100.9"

WANTED = frozenset({"x-api-key", "authorization", "x-forwarded-for", "forwarded", "x-real-ip"})
#: the examples' proxies, plus an internal load-balancer network
PROXIES = ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]


@pytest.fixture
def resolver() -> ClientIpResolver:
    """Proxies that write X-Forwarded-For (the default: nginx, Caddy, Traefik, Envoy)."""
    return ClientIpResolver(PROXIES)


@pytest.fixture
def forwarded_resolver() -> ClientIpResolver:
    """Proxies that write RFC 7239 ``Forwarded``."""
    return ClientIpResolver(PROXIES, "forwarded")


@pytest.fixture
def real_ip_resolver() -> ClientIpResolver:
    """Proxies that write ``X-Real-IP`` (nginx ``proxy_set_header X-Real-IP $remote_addr``)."""
    return ClientIpResolver(PROXIES, "x-real-ip")


# api_key_from


def test_the_api_key_header_wins_over_authorization_bearer() -> None:
    headers = {"x-api-key": "from-header", "authorization": "Bearer from-bearer"}
    assert api_key_from(headers, KEY_HEADERS, bearer=True) == "from-header"


def test_configured_key_headers_are_tried_in_order() -> None:
    headers = {"x-token": "second", "x-api-key": "first"}

    assert api_key_from(headers, ("x-api-key", "x-token"), bearer=False) == "first"
    assert api_key_from(headers, ("x-token", "x-api-key"), bearer=False) == "second"
    assert api_key_from({"x-token": "second"}, ("x-api-key", "x-token"), bearer=False) == "second"


@pytest.mark.parametrize("empty", ["", "   ", "\t"])
def test_an_empty_key_header_falls_back_to_the_next_source(empty: str) -> None:
    headers = {"x-api-key": empty, "authorization": "Bearer from-bearer"}

    assert api_key_from(headers, KEY_HEADERS, bearer=True) == "from-bearer"
    assert api_key_from({"x-api-key": empty}, KEY_HEADERS, bearer=True) is None


@pytest.mark.parametrize(
    ("authorization", "key"),
    [
        ("Bearer abc123", "abc123"),
        ("bearer abc123", "abc123"),
        ("BEARER abc123", "abc123"),
        ("Bearer   abc123  ", "abc123"),
        ("Bearer ", None),
        ("Bearer    ", None),
        ("Bearer", None),
        ("Bearerabc123", None),
        ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
        ("Token abc123", None),
        ("", None),
    ],
)
def test_a_bearer_token_is_the_key_and_other_schemes_are_not(
    authorization: str, key: str | None
) -> None:
    assert api_key_from({"authorization": authorization}, KEY_HEADERS, bearer=True) == key


def test_authorization_is_ignored_when_bearer_keys_are_off() -> None:
    assert api_key_from({"authorization": "Bearer abc123"}, KEY_HEADERS, bearer=False) is None


def test_the_key_header_value_is_stripped() -> None:
    assert api_key_from({"x-api-key": "  abc123 "}, KEY_HEADERS, bearer=True) == "abc123"


def test_no_key_anywhere_is_none() -> None:
    assert api_key_from({}, KEY_HEADERS, bearer=True) is None


# lower_headers


def test_lower_headers_keeps_only_the_wanted_headers_with_lower_case_names() -> None:
    headers = {"X-API-Key": "abc", "X-Forwarded-For": CLIENT, "Cookie": "secret=1"}

    assert lower_headers(headers, WANTED) == {"x-api-key": "abc", "x-forwarded-for": CLIENT}


def test_lower_headers_keeps_the_first_of_two_spellings_of_one_name() -> None:
    headers = {"X-API-Key": "first", "x-api-key": "second"}

    assert lower_headers(headers, WANTED) == {"x-api-key": "first"}


class FieldLines(Mapping[str, str]):
    """Header field lines in wire order, repeats included (like Starlette's ``Headers``).

    ``items()`` yields every line; lookups see the first one.
    """

    def __init__(self, lines: list[tuple[str, str]]) -> None:
        self._lines = lines

    def __getitem__(self, name: str) -> str:
        for key, value in self._lines:
            if key.lower() == name.lower():
                return value
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._lines))

    def __len__(self) -> int:
        return len(dict.fromkeys(key for key, _ in self._lines))

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._lines)


def test_repeated_x_forwarded_for_lines_are_one_list_in_order(
    resolver: ClientIpResolver,
) -> None:
    forged_then_real = FieldLines([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", CLIENT)])

    headers = lower_headers(forged_then_real, WANTED)

    assert headers["x-forwarded-for"] == f"6.6.6.6, {CLIENT}"
    assert resolver.resolve(PROXY, headers) == CLIENT


# ClientIpResolver: whom to believe


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    resolver = ClientIpResolver([])

    assert resolver.enabled is False
    assert resolver.resolve(PROXY, {"x-forwarded-for": CLIENT}) == PROXY


def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    resolver: ClientIpResolver,
) -> None:
    headers = {"x-forwarded-for": CLIENT, "forwarded": f"for={CLIENT}"}

    assert resolver.enabled is True
    assert resolver.resolve(UNTRUSTED, headers) == UNTRUSTED


def test_a_trusted_proxy_s_x_forwarded_for_names_the_client(resolver: ClientIpResolver) -> None:
    assert resolver.resolve(PROXY, {"x-forwarded-for": CLIENT}) == CLIENT
    assert resolver.resolve("::1", {"x-forwarded-for": CLIENT}) == CLIENT


def test_the_right_most_untrusted_address_is_the_client_whatever_the_client_forged(
    resolver: ClientIpResolver,
) -> None:
    forged = {"x-forwarded-for": f"1.2.3.4, 10.0.0.1, {UNTRUSTED}, {CLIENT}"}
    assert resolver.resolve(PROXY, forged) == CLIENT


def test_a_chain_of_several_trusted_proxies_is_walked_back_to_the_client(
    resolver: ClientIpResolver,
) -> None:
    # client -> edge proxy 10.1.2.3 -> balancer 10.9.9.9 -> sidecar 127.0.0.1 -> us
    headers = {"x-forwarded-for": f"6.6.6.6, {CLIENT}, 10.1.2.3, 10.9.9.9"}
    assert resolver.resolve(PROXY, headers) == CLIENT


def test_a_chain_of_only_trusted_proxies_ends_at_its_left_most_address(
    resolver: ClientIpResolver,
) -> None:
    assert resolver.resolve(PROXY, {"x-forwarded-for": "10.0.0.5, 10.0.0.6"}) == "10.0.0.5"


def test_a_chain_longer_than_32_hops_is_read_only_32_hops_back(
    resolver: ClientIpResolver,
) -> None:
    chain = ", ".join([CLIENT] + ["10.0.0.1"] * 32)
    assert resolver.resolve(PROXY, {"x-forwarded-for": chain}) == "10.0.0.1"


def test_trusted_networks_accept_bare_addresses_and_host_bits() -> None:
    resolver = ClientIpResolver(["127.0.0.1", "10.1.2.3/8"])

    assert resolver.is_trusted("127.0.0.1") is True
    assert resolver.is_trusted("10.200.0.1") is True
    assert resolver.is_trusted("127.0.0.2") is False
    assert resolver.is_trusted("not-an-address") is False


def test_a_non_canonical_spelling_of_a_trusted_ipv6_peer_is_trusted(
    resolver: ClientIpResolver,
) -> None:
    assert resolver.resolve("0:0:0:0:0:0:0:1", {"x-forwarded-for": CLIENT}) == CLIENT


def test_a_trusted_proxy_seen_as_an_ipv4_mapped_ipv6_peer_is_trusted(
    resolver: ClientIpResolver,
) -> None:
    assert resolver.resolve("::ffff:127.0.0.1", {"x-forwarded-for": CLIENT}) == CLIENT


def test_an_ipv4_mapped_peer_is_the_same_client_as_its_ipv4_address(
    resolver: ClientIpResolver,
) -> None:
    assert resolver.resolve(f"::ffff:{CLIENT}", {}) == CLIENT


# ClientIpResolver: address forms in the headers


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        (CLIENT, CLIENT),
        (f"  {CLIENT}  ", CLIENT),
        (f"{CLIENT}:4711", CLIENT),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        (f"::ffff:{CLIENT}", CLIENT),
        (f"[::ffff:{CLIENT}]:4711", CLIENT),
    ],
)
def test_forwarded_addresses_are_canonicalized_so_one_client_has_one_spelling(
    resolver: ClientIpResolver, hop: str, client: str
) -> None:
    assert resolver.resolve(PROXY, {"x-forwarded-for": hop}) == client


@pytest.mark.parametrize(
    "chain",
    [
        "garbage",
        f"{CLIENT}, garbage",
        f"{CLIENT},,",
        f"{CLIENT}, ",
        "unknown",
        "999.1.1.1",
        "1.2.3.4/24",
        "[2001:db8::1",
        "2001:db8::1]:4711",
        f"{CLIENT}:4711:1",
        "<script>",
    ],
)
def test_garbage_in_x_forwarded_for_is_never_taken_for_the_client(
    resolver: ClientIpResolver, chain: str
) -> None:
    assert resolver.resolve(PROXY, {"x-forwarded-for": chain}) == PROXY


def test_garbage_left_of_the_client_is_never_read(resolver: ClientIpResolver) -> None:
    assert resolver.resolve(PROXY, {"x-forwarded-for": f"garbage, {CLIENT}"}) == CLIENT


def test_garbage_inside_the_proxy_chain_stops_the_walk_at_the_last_good_proxy(
    resolver: ClientIpResolver,
) -> None:
    headers = {"x-forwarded-for": f"{CLIENT}, garbage, 10.0.0.2"}
    assert resolver.resolve(PROXY, headers) == "10.0.0.2"


# ClientIpResolver: the Forwarded header (RFC 7239)


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        (f"for={CLIENT}", CLIENT),
        (f"For={CLIENT}", CLIENT),
        (f'for="{CLIENT}"', CLIENT),
        (f"for={CLIENT};proto=https;by=10.0.0.1", CLIENT),
        (f"proto=https; for={CLIENT}", CLIENT),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        (f"for=6.6.6.6, for={CLIENT}, for=10.0.0.2", CLIENT),
        (f"for={CLIENT}:4711", CLIENT),
    ],
)
def test_the_forwarded_header_names_the_client(
    forwarded_resolver: ClientIpResolver, forwarded: str, client: str
) -> None:
    assert forwarded_resolver.resolve(PROXY, {"forwarded": forwarded}) == client


@pytest.mark.parametrize(
    "forwarded",
    ["for=unknown", "for=_hidden", "proto=https", f"for={CLIENT}, proto=https", "for="],
)
def test_an_obfuscated_or_missing_for_in_forwarded_is_never_taken_for_the_client(
    forwarded_resolver: ClientIpResolver, forwarded: str
) -> None:
    assert forwarded_resolver.resolve(PROXY, {"forwarded": forwarded}) == PROXY


def test_x_forwarded_for_wins_over_forwarded(resolver: ClientIpResolver) -> None:
    headers = {"x-forwarded-for": CLIENT, "forwarded": "for=6.6.6.6"}
    assert resolver.resolve(PROXY, headers) == CLIENT


# ClientIpResolver: only the header the proxies write


def test_x_forwarded_for_proxies_never_have_forwarded_read(resolver: ClientIpResolver) -> None:
    # the proxy writes X-Forwarded-For and passes the client's Forwarded through
    assert resolver.header == "x-forwarded-for"
    assert resolver.resolve(PROXY, {"forwarded": "for=6.6.6.6"}) == PROXY
    assert resolver.resolve(PROXY, {"x-real-ip": "6.6.6.6"}) == PROXY


def test_forwarded_proxies_never_have_x_forwarded_for_read(
    forwarded_resolver: ClientIpResolver,
) -> None:
    # the proxy writes Forwarded and passes the client's X-Forwarded-For through
    headers = {"forwarded": f"for={CLIENT}", "x-forwarded-for": "6.6.6.6"}

    assert forwarded_resolver.resolve(PROXY, headers) == CLIENT
    assert forwarded_resolver.resolve(PROXY, {"x-forwarded-for": "6.6.6.6"}) == PROXY
    assert forwarded_resolver.resolve(PROXY, {"x-real-ip": "6.6.6.6"}) == PROXY


def test_forwarded_is_walked_from_the_right_past_trusted_proxies(
    forwarded_resolver: ClientIpResolver,
) -> None:
    forged = {"forwarded": f"for=6.6.6.6, for={CLIENT}, for=10.0.0.2, for=127.0.0.1"}
    assert forwarded_resolver.resolve(PROXY, forged) == CLIENT


def test_forwarded_from_an_untrusted_peer_is_ignored(forwarded_resolver: ClientIpResolver) -> None:
    assert forwarded_resolver.resolve(UNTRUSTED, {"forwarded": f"for={CLIENT}"}) == UNTRUSTED


def test_a_trusted_proxy_s_x_real_ip_names_the_client(real_ip_resolver: ClientIpResolver) -> None:
    headers = {"x-real-ip": CLIENT, "x-forwarded-for": "6.6.6.6", "forwarded": "for=6.6.6.6"}

    assert real_ip_resolver.resolve(PROXY, headers) == CLIENT
    assert real_ip_resolver.resolve(PROXY, {"x-real-ip": " 2001:DB8::1 "}) == "2001:db8::1"
    assert real_ip_resolver.resolve(PROXY, {"x-forwarded-for": "6.6.6.6"}) == PROXY


def test_x_real_ip_from_an_untrusted_peer_is_ignored(real_ip_resolver: ClientIpResolver) -> None:
    assert real_ip_resolver.resolve(UNTRUSTED, {"x-real-ip": CLIENT}) == UNTRUSTED


@pytest.mark.parametrize("value", ["garbage", f"6.6.6.6, {CLIENT}", "unknown", "1.2.3.4/24"])
def test_x_real_ip_that_is_not_one_address_is_never_taken_for_the_client(
    real_ip_resolver: ClientIpResolver, value: str
) -> None:
    assert real_ip_resolver.resolve(PROXY, {"x-real-ip": value}) == PROXY


def test_a_repeated_x_real_ip_is_not_believed(real_ip_resolver: ClientIpResolver) -> None:
    # a proxy that appends instead of replacing: which line is the client's own?
    lines = FieldLines([("X-Real-IP", "6.6.6.6"), ("X-Real-IP", CLIENT)])

    assert real_ip_resolver.resolve(PROXY, lower_headers(lines, WANTED)) == PROXY


def test_an_unknown_forwarding_header_is_refused() -> None:
    with pytest.raises(ValueError, match="x-forwarded-for, forwarded, x-real-ip"):
        ClientIpResolver(PROXIES, "x-client-ip")


# over-long headers


def test_an_over_long_x_forwarded_for_is_not_read(resolver: ClientIpResolver) -> None:
    chain = ", ".join(["192.0.2.1"] * 1000) + f", {CLIENT}"
    assert len(chain) > 8192

    assert resolver.resolve(PROXY, {"x-forwarded-for": chain}) == PROXY


def test_an_over_long_forwarded_is_not_read(forwarded_resolver: ClientIpResolver) -> None:
    forwarded = ", ".join(["for=192.0.2.1"] * 1000) + f", for={CLIENT}"
    assert len(forwarded) > 8192

    assert forwarded_resolver.resolve(PROXY, {"forwarded": forwarded}) == PROXY


def test_an_over_long_x_forwarded_for_does_not_hand_the_choice_to_a_forged_forwarded(
    resolver: ClientIpResolver,
) -> None:
    # the client sends ~8 KB of X-Forwarded-For and its own Forwarded header; the
    # proxy appends the real address to X-Forwarded-For and leaves Forwarded alone
    headers = {
        "x-forwarded-for": "192.0.2.1, " * 745 + CLIENT,
        "forwarded": "for=6.6.6.6",
    }
    assert len(headers["x-forwarded-for"]) > 8192

    assert resolver.resolve(PROXY, headers) != "6.6.6.6"


# ClientAddresses: the form a client is counted by


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        (CLIENT, CLIENT),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        (f"::ffff:{CLIENT}", CLIENT),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
        ("", ""),
    ],
)
def test_ipv6_clients_are_counted_by_their_64_and_ipv4_clients_by_their_address(
    address: str, counted: str
) -> None:
    assert ClientAddresses().counted(address) == counted


@pytest.mark.parametrize(
    ("address", "counted"),
    [
        (CLIENT, "203.0.113.0/24"),
        (f"::ffff:{CLIENT}", "203.0.113.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_the_prefixes_are_configurable(address: str, counted: str) -> None:
    assert ClientAddresses(ipv4_prefix=24, ipv6_prefix=48).counted(address) == counted


def test_a_whole_prefix_counts_the_address_itself_in_its_canonical_spelling() -> None:
    addresses = ClientAddresses(ipv4_prefix=32, ipv6_prefix=128)

    assert addresses.counted("2001:DB8:0::1") == "2001:db8::1"
    assert addresses.counted(f"::ffff:{CLIENT}") == CLIENT


def test_counted_forms_are_remembered_within_a_bound() -> None:
    addresses = ClientAddresses()
    for n in range(20_000):
        addresses.counted(f"2001:db8:{n:x}::1")

    assert len(addresses._cache) <= 16_384
    assert addresses.counted("2001:db8:ffff::1") == "2001:db8:ffff::/64"


@pytest.mark.parametrize(
    ("ipv4", "ipv6"), [(0, 64), (33, 64), (32, 0), (32, 129)], ids=["4:0", "4:33", "6:0", "6:129"]
)
def test_a_prefix_longer_than_the_address_or_empty_is_refused(ipv4: int, ipv6: int) -> None:
    with pytest.raises(ValueError, match="prefix must be between"):
        ClientAddresses(ipv4_prefix=ipv4, ipv6_prefix=ipv6)


# ClientAddresses: the policy network a client is in


def test_the_first_network_holding_an_address_is_its_network() -> None:
    addresses = ClientAddresses(
        networks=[(["10.1.0.0/16"], "first"), (["10.0.0.0/8", "fd00::/8"], "second")]
    )

    assert addresses.plain_ipv4 is False  # every address must be looked up
    assert addresses.lookup("10.1.2.3") == ("10.1.2.3", "first")
    assert addresses.lookup("10.2.0.1") == ("10.2.0.1", "second")
    assert addresses.lookup("fd00::1:2") == ("fd00::/64", "second")
    assert addresses.lookup(f"::ffff:{CLIENT}") == (CLIENT, None)
    assert addresses.lookup("::ffff:10.1.0.9") == ("10.1.0.9", "first")
    assert addresses.lookup("garbage") == ("garbage", None)


def test_a_network_is_matched_by_the_full_address_not_its_counted_prefix() -> None:
    addresses = ClientAddresses(ipv4_prefix=16, networks=[(["10.1.2.0/24"], "exempt")])

    assert addresses.lookup("10.1.2.3") == ("10.1.0.0/16", "exempt")
    assert addresses.lookup("10.1.3.3") == ("10.1.0.0/16", None)


# one home: headers read one way, keys parsed and found one way, one tag writer


def test_every_face_s_headers_read_to_the_same_lowered_headers() -> None:
    from ratekeeper.identity import HeaderReader

    reader = HeaderReader(WANTED)
    asgi = [
        (b"x-api-key", b"k1"),
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-other", b"never read"),
    ]
    environ = {
        "HTTP_X_API_KEY": "k1",
        "HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7",  # the server joined the lines
        "HTTP_X_OTHER": "never read",
    }
    mapping = {"X-Api-Key": "k1", "X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Other": "-"}
    expected = {"x-api-key": "k1", "x-forwarded-for": "198.51.100.1, 203.0.113.7"}

    assert reader.from_asgi(asgi) == expected
    assert reader.from_environ(environ) == expected
    assert reader.from_mapping(mapping) == expected
    assert reader.from_getter({k.lower(): v for k, v in mapping.items()}.get) == expected
    assert not HeaderReader(())


def test_a_presented_key_is_found_by_its_sha256_and_remembered() -> None:
    from ratekeeper.identity import KnownKeys, key_digest

    keys: KnownKeys[str] = KnownKeys({key_digest("k1"): "one"}, size=2)

    assert keys.find("k1") == "one"
    assert keys.known == {"k1": "one"}
    assert keys.find("k2") is None
    assert keys.find("k1" + "x" * 600) is None  # over-long: unknown, never hashed
    assert keys.find("k\udcff") is None  # text that is not valid is escaped, not refused
    assert list(keys.known) == ["k1"]


def test_route_limits_parse_keys_with_the_policy_s_parser() -> None:
    from types import SimpleNamespace

    from ratekeeper.identity import key_digest
    from ratekeeper.integrations.routes import RouteLimit

    route = RouteLimit("5/minute", key="api_key")

    def request(**headers: str) -> object:
        lowered = {name.replace("_", "-"): value for name, value in headers.items()}
        return SimpleNamespace(remote_addr=CLIENT, headers=lowered)

    by_header = route.counter_key("v", request(x_api_key=" k1 "))
    by_bearer = route.counter_key("v", request(authorization="Bearer k1"))
    assert by_header == by_bearer == f"route:v:key:{key_digest('k1')[:32]}"
    assert route.counter_key("v", request(authorization="Basic k1")) == f"route:v:ip:{CLIENT}"
    assert api_key_from({"x-api-key": " k1 "}, KEY_HEADERS, True) == "k1"


def test_what_a_limit_counts_by_is_one_hash_tag_with_request_text_escaped() -> None:
    from ratekeeper.identity import BadRequestError, Identifier

    identify = Identifier("x-node-id", "X-Node-ID", "x-user")
    headers = {"x-node-id": "edge-{1}%", "x-user": "ann"}

    assert identify.tag(("ip",), None, None, CLIENT, {}, {}) == "{203.0.113.7}"
    assert identify.tag(("api_key", "node"), None, None, CLIENT, headers, {}) == (
        "{anon:203.0.113.7|edge-%7B1%7D%25}"
    )
    assert identify.tag(("user",), None, None, CLIENT, headers, {}) == "{u:ann}"
    with pytest.raises(BadRequestError, match="missing X-Node-ID"):
        identify.tag(("node",), None, None, CLIENT, {}, {})


def test_a_header_name_no_request_can_carry_is_never_matched_and_never_fails() -> None:
    from ratekeeper.identity import HeaderReader

    reader = HeaderReader({"\u0100x-node-id", "x-api-key"})

    assert reader.from_asgi([(b"x-api-key", b"k1"), (b"\xc4\x80x-node-id", b"n")]) == {
        "x-api-key": "k1"
    }
