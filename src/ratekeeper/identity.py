"""Who is calling, in one place: API key, client IP behind trusted proxies, user, node.

Every face and the engine ask here: the limiter (its counters, leases,
lockouts and penalty), route limits (``ratekeeper.limit``) and, later, the
decision service. Request headers are read one way (:class:`HeaderReader`:
only the ones the policy reads, lower-case names, repeated forwarding headers
joined) from whatever a face holds (ASGI byte pairs, a WSGI environ, a
mapping, a framework's header getter); the API key is parsed from them one
way (:func:`api_key_from`: the configured headers, then ``Authorization:
Bearer``); a presented key is found by its SHA-256 (:class:`KnownKeys`); and
what a limit counts by (``by: [api_key, node]``) is written as the Redis
hash tag of its keys (:class:`Identifier`), so every key of one caller lands
on one Cluster slot.

A forwarding header is believed only when the connection comes from a
configured trusted proxy, and then only as far back as the chain of trusted
proxies goes: the client is the right-most address that is not a trusted
proxy. Anything malformed in the header ends the walk: garbage is never taken
for an address.

Only the one header the policy names (``identity.forwarded_header``) is read:
the one its proxies write. A proxy writes one of ``X-Forwarded-For``,
``Forwarded`` or ``X-Real-IP`` and passes the others through as the client
sent them, so reading any other header, even as a fallback, lets the client
choose its own address.

A client is then counted by its network, not its address
(:class:`ClientAddresses`): one IPv6 host or site is given a whole /64 and can
use a new address of it for every request. The same lookup finds the policy's
network (``identity.networks``) the client is in: exempt, or given a plan.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from ._memo import BoundedMemo
from .text import safe_text

__all__ = [
    "FORWARDED_HEADERS",
    "MAX_IDENTITY",
    "BadRequestError",
    "Caller",
    "ClientAddresses",
    "ClientIpResolver",
    "HeaderReader",
    "Identifier",
    "KnownKeys",
    "LoweredHeaders",
    "api_key_from",
    "key_digest",
    "lower_headers",
    "peer_text",
]

#: the forwarding headers a policy's trusted proxies can write (lower-case names)
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAX_HOPS = 32  # a longer chain is not a real proxy chain; stop reading it
_MAX_HEADER = 8192
# repeated lines form one list (a repeated X-Real-IP is then refused: it holds one address)
_LIST_HEADERS = frozenset(FORWARDED_HEADERS)
_LIST_HEADERS_RAW = frozenset(name.encode("latin-1") for name in FORWARDED_HEADERS)
#: client addresses whose counted form is remembered before the memo starts over
_MAX_ADDRESSES = 16_384
#: longer node ids or header values a limit counts by are refused, not stored
MAX_IDENTITY = 256
#: longer presented API keys are unknown without being hashed
_MAX_API_KEY = 512
#: presented keys known to be valid, remembered before the memo starts over
_MAX_KNOWN_KEYS = 4096
#: peers known to be trusted proxies or not, before the memo starts over
_MAX_PEERS = 4096
_Entry = TypeVar("_Entry")
_Record = TypeVar("_Record")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, said outright by a caller that knows (not read from an HTTP request).

    What a service given descriptors passes instead of a request: the
    client's address (already the client's: no proxy is walked back), the
    API key presented, the user and node a limit may count by, and any
    header or path parameter a limit counts by (``header:NAME``, ``path:NAME``).
    """

    client_ip: str = ""
    api_key: str | None = None
    user: str | None = None
    node: str | None = None
    headers: Mapping[str, str] | None = None
    params: Mapping[str, str] = field(default_factory=dict)


class LoweredHeaders(dict[str, str]):
    """Request headers already reduced to a policy's wanted ones, with lower-case names.

    What the middleware builds from the raw request (ASGI names are lower-case
    already): ``lower_headers`` hands it back as it is instead of lowering
    every name a second time.
    """

    __slots__ = ()


def lower_headers(headers: Mapping[str, str], wanted: frozenset[str]) -> dict[str, str]:
    """The ``wanted`` headers (lower-case names) of a request, lower-cased once.

    Repeated headers (rare in the mappings callers pass) keep the first value.
    """
    if isinstance(headers, LoweredHeaders):
        return headers
    found: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in wanted:
            if lowered not in found:
                found[lowered] = value
            elif lowered in _LIST_HEADERS:
                found[lowered] += ", " + value
    return found


class HeaderReader:
    """Reads the request headers a policy reads, and only those, the same way from any face.

    ``wanted``: lower-case header names. Whatever the request is held in
    (ASGI byte pairs, a WSGI environ, a mapping, a framework's getter), the
    answer is one :class:`LoweredHeaders`: lower-case names, values as text,
    repeated forwarding headers joined into one list (as HTTP reads them),
    other repeats keeping the first. ASGI values are decoded as latin-1, one
    character per byte: that never fails, and never gives text that
    :func:`~ratekeeper.text.safe_text` would change.
    """

    __slots__ = ("_environ_keys", "_raw", "wanted")

    def __init__(self, wanted: Iterable[str]) -> None:
        self.wanted = frozenset(wanted)
        #: ASGI name (bytes) -> text name; a name that is not latin-1 is never on the wire
        self._raw = {name.encode("latin-1"): name for name in self.wanted if _is_latin_1(name)}
        #: (text name, WSGI environ key)
        self._environ_keys = tuple(
            (name, "HTTP_" + name.upper().replace("-", "_")) for name in sorted(self.wanted)
        )

    def __bool__(self) -> bool:
        return bool(self.wanted)

    def from_asgi(self, raw: Iterable[tuple[bytes, bytes]]) -> LoweredHeaders:
        """From ASGI ``scope["headers"]``: names are lower-case bytes already."""
        wanted = self._raw
        found = LoweredHeaders()
        for name, value in raw:
            text = wanted.get(name)
            if text is not None:
                if text not in found:
                    found[text] = value.decode("latin-1")
                elif name in _LIST_HEADERS_RAW:
                    found[text] += ", " + value.decode("latin-1")
        return found

    def from_environ(self, environ: Mapping[str, Any]) -> LoweredHeaders:
        """From a WSGI environ (``HTTP_X_API_KEY``): the server has joined repeats."""
        found = LoweredHeaders()
        for name, key in self._environ_keys:
            if key in environ:
                found[name] = environ[key]
        return found

    def from_mapping(self, headers: Mapping[str, str]) -> dict[str, str]:
        """From a mapping of any case (what callers of ``check`` pass)."""
        return lower_headers(headers, self.wanted)

    def from_getter(self, get: Callable[[str], str | None]) -> LoweredHeaders:
        """From a framework's ``request.headers.get`` (or Django's ``META`` lookup)."""
        found = LoweredHeaders()
        for name in self.wanted:
            value = get(name)
            if value is not None:
                found[name] = value
        return found


def _is_latin_1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def api_key_from(headers: dict[str, str], names: tuple[str, ...], bearer: bool) -> str | None:
    """The API key in the first configured header, else in ``Authorization: Bearer``.

    The one parser of presented keys: the limiter and route limits read
    keys through it, from headers read by :class:`HeaderReader`.
    """
    for name in names:
        value = headers.get(name)
        if value:
            value = value.strip()
            if value:
                return value
    if bearer:
        value = headers.get("authorization")
        if value and value[:7].lower() == "bearer ":
            token = value[7:].strip()
            return token or None
    return None


def key_digest(presented: str) -> str:
    """The SHA-256 of a presented API key, hex: what policies and counters know it by."""
    return hashlib.sha256(presented.encode()).hexdigest()


class KnownKeys(Generic[_Record]):
    """Presented API keys to their records, found by SHA-256.

    ``records`` maps each known key's SHA-256 (hex) to its record. A presented
    key is text from outside: escaped first (:mod:`ratekeeper.text`), never
    hashed when longer than 512 characters (unknown). Known keys are
    remembered as presented (``known``, a bounded memo, read directly on the
    hot path): a repeat request skips the hash. Process memory only.
    """

    __slots__ = ("_memo", "_records", "known")

    def __init__(self, records: Mapping[str, _Record], size: int = _MAX_KNOWN_KEYS) -> None:
        self._records = records
        self._memo: BoundedMemo[str, _Record] = BoundedMemo(size)
        #: presented key (as safe text) -> record, for keys found before
        self.known = self._memo.answers

    def find(self, presented: str) -> _Record | None:
        """The record of ``presented``, or ``None`` for an unknown key."""
        if not presented.isascii():  # header text enters where it is read (ratekeeper.text)
            presented = safe_text(presented)
        record = self.known.get(presented)
        if record is not None:
            return record
        if len(presented) > _MAX_API_KEY:
            return None
        record = self._records.get(key_digest(presented))
        if record is not None:
            self._memo.keep(presented, record)
        return record


def peer_text(peer: str) -> str:
    """A connection's peer address as safe text: it comes from outside (a raw scope)."""
    return peer if peer.isascii() else safe_text(peer)


class ClientIpResolver:
    """The client address of a request, given the peer and its forwarding header.

    ``header`` is the one forwarding header the trusted proxies write (one of
    :data:`FORWARDED_HEADERS`); every other one is ignored.
    """

    __slots__ = ("_hops", "_networks", "_trusted_cache", "header")

    def __init__(self, trusted_proxies: Iterable[str], header: str = "x-forwarded-for") -> None:
        if header not in FORWARDED_HEADERS:
            known = ", ".join(FORWARDED_HEADERS)
            raise ValueError(f"header must be one of {known}, got {header!r}")
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in trusted_proxies
        )
        self._trusted_cache: BoundedMemo[str, bool] = BoundedMemo(_MAX_PEERS)
        self.header = header
        self._hops = _HOP_READERS[header]

    @property
    def enabled(self) -> bool:
        return bool(self._networks)

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` (a canonical IP string) is a trusted proxy."""
        cached = self._trusted_cache.answers.get(address)
        if cached is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                cached = False
            else:
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                cached = any(ip in network for network in self._networks)
            self._trusted_cache.keep(address, cached)
        return cached

    def client_ip(self, peer: str, headers: dict[str, str]) -> str:
        """The client IP of a request from ``peer``, believing only trusted proxies.

        ``headers``: the request headers the policy reads (:class:`HeaderReader`).
        ``peer`` is escaped (:func:`peer_text`); an address taken from a
        forwarding header is a canonical IP, ASCII.
        """
        if not peer.isascii():
            peer = safe_text(peer)
        if not self._networks:
            return peer
        return self.resolve(peer, headers)

    def resolve(self, peer: str, headers: dict[str, str]) -> str:
        """The client IP: ``peer`` unless a trusted proxy forwarded the request."""
        if peer.startswith("::") and peer[:7].lower() == "::ffff:":
            peer = _canonical_ip(peer) or peer
        if not self._networks:
            return peer
        value = headers.get(self.header)
        if not value:
            return peer  # nothing forwarded: no need to know whether the peer is a proxy
        if not self.is_trusted(peer):
            return peer
        hops = self._hops(value)
        if not hops:
            return peer
        client = peer
        for hop in reversed(hops):
            address = _canonical_ip(hop)
            if address is None:
                return client  # garbage: trust nothing to its left
            client = address
            if not self.is_trusted(address):
                return address
        return client


class ClientAddresses(Generic[_Entry]):
    """The form of a client address that counters, lockouts and the penalty count by.

    An IPv6 client is counted by its network, ``ipv6_prefix`` bits long (64 by
    default, as Cloudflare and most providers do): a host or site gets a whole
    /64 and can take a new address of it for every request: counted per
    address, one client rotating addresses got 100 of 100 requests through a
    10/minute per-IP limit. IPv4
    clients are counted per address unless ``ipv4_prefix`` says otherwise. An
    IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, as dual-stack listeners
    report IPv4 peers) is its IPv4 address before any prefix applies.

    ``networks`` pairs CIDR ranges with an entry (the compiled policy's
    exempt or planned network); :meth:`lookup` gives the first entry, in the
    given order, whose ranges hold the address.

    ``counted`` gives ``"2001:db8:1:2::/64"`` for a prefix and the address
    itself for a whole one; text that is not an address is counted as given.
    Both are remembered per address (a bounded memo, as
    :meth:`ClientIpResolver.is_trusted` does). With IPv4 counted per address
    and no networks (``plain_ipv4``), an address without ``:`` is its own form,
    in no network, without a lookup.
    """

    __slots__ = ("_cache", "_ipv4_prefix", "_ipv6_prefix", "_networks", "plain_ipv4")

    def __init__(
        self,
        ipv4_prefix: int = 32,
        ipv6_prefix: int = 64,
        networks: Iterable[tuple[Iterable[str], _Entry]] = (),
    ) -> None:
        if not 1 <= ipv4_prefix <= 32:
            raise ValueError(f"ipv4_prefix must be between 1 and 32, got {ipv4_prefix}")
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError(f"ipv6_prefix must be between 1 and 128, got {ipv6_prefix}")
        self._ipv4_prefix = ipv4_prefix
        self._ipv6_prefix = ipv6_prefix
        self._networks: tuple[tuple[_Network, _Entry], ...] = tuple(
            (ipaddress.ip_network(cidr, strict=False), entry)
            for cidrs, entry in networks
            for cidr in cidrs
        )
        #: an address without ``:`` (IPv4, or no address at all) is counted as
        #: itself and is in no network
        self.plain_ipv4 = ipv4_prefix == 32 and not self._networks
        self._cache: BoundedMemo[str, tuple[str, _Entry | None]] = BoundedMemo(_MAX_ADDRESSES)

    def counted(self, address: str) -> str:
        """The form ``address`` (a client IP, as resolved) is counted by."""
        if self.plain_ipv4 and ":" not in address:
            return address
        return self.lookup(address)[0]

    def lookup(self, address: str) -> tuple[str, _Entry | None]:
        """``address``'s counted form and the entry of the first network holding it."""
        found = self._cache.answers.get(address)
        if found is None:
            found = self._cache.keep(address, self._classify(address))
        return found

    def _classify(self, address: str) -> tuple[str, _Entry | None]:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address, None  # not an address (a test client, a socket path): as given
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        prefix = self._ipv4_prefix if ip.version == 4 else self._ipv6_prefix
        entry = next((entry for network, entry in self._networks if ip in network), None)
        return _prefixed(ip, prefix), entry


def _prefixed(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> str:
    """``ip``'s network of ``prefix`` bits as text; the address itself for a whole one."""
    if prefix == ip.max_prefixlen:
        return str(ip)
    host_bits = ip.max_prefixlen - prefix
    first = int(ip) >> host_bits << host_bits  # no scope id: "fe80::1%eth0" counts as its net
    if ip.version == 4:
        return str(ipaddress.IPv4Network((first, prefix)))
    return str(ipaddress.IPv6Network((first, prefix)))


def _xff_hops(value: str) -> list[str] | None:
    if len(value) > _MAX_HEADER:
        return None
    hops = [hop.strip() for hop in value.split(",")]
    return hops[-_MAX_HOPS:]


def _forwarded_hops(value: str) -> list[str] | None:
    """The ``for=`` addresses of an RFC 7239 ``Forwarded`` header, in order."""
    if len(value) > _MAX_HEADER:
        return None
    hops: list[str] = []
    for element in value.split(","):
        found = ""
        for pair in element.split(";"):
            name, _, token = pair.strip().partition("=")
            if name.strip().lower() == "for":
                found = token.strip().strip('"')
                break
        hops.append(found)
    return hops[-_MAX_HOPS:]


def _real_ip_hops(value: str) -> list[str] | None:
    """``X-Real-IP`` holds one address; a list (the header repeated) is not believed."""
    if len(value) > _MAX_HEADER or "," in value:
        return None
    return [value.strip()]


_HOP_READERS = {
    "x-forwarded-for": _xff_hops,
    "forwarded": _forwarded_hops,
    "x-real-ip": _real_ip_hops,
}


def _canonical_ip(text: str) -> str | None:
    """The canonical form of an address from a forwarding header, or ``None``."""
    if text.startswith("["):  # "[2001:db8::1]:4711" (Forwarded) or "[2001:db8::1]"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


# What a limit counts by: the identity part of its keys.


class BadRequestError(Exception):
    """The request lacks what a limit needs to key it (a node id, a header)."""


class KeyRecord(Protocol):
    """A known API key, as identity needs it (the compiled policy's key record)."""

    @property
    def id(self) -> str: ...

    @property
    def user(self) -> str | None: ...


class PlanRecord(Protocol):
    """A plan, as identity needs it."""

    @property
    def name(self) -> str: ...


class Identifier:
    """Writes what a limit counts a caller by, as the hash tag of its keys.

    ``by`` parts: ``api_key`` (the key's id; callers without a known key by
    ``anon:`` and their counted IP), ``ip`` (the counted IP), ``node`` (the
    node header, else the ``{node}`` path parameter), ``user`` (a key's user,
    else the user header), ``global``, ``plan``, ``header:NAME``,
    ``path:NAME``. A value from the request is escaped (:mod:`ratekeeper.text`),
    at most :data:`MAX_IDENTITY` characters, and its braces and ``%`` are
    percent-encoded so that it cannot end the tag early.
    """

    __slots__ = ("_node_header", "_node_header_name", "_user_header")

    def __init__(self, node_header: str, node_header_name: str, user_header: str | None) -> None:
        #: lower-case names as read; the node header's own spelling, for errors
        self._node_header = node_header
        self._node_header_name = node_header_name
        self._user_header = user_header

    def tag(
        self,
        by: tuple[str, ...],
        record: KeyRecord | None,
        plan: PlanRecord | None,
        ip: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
    ) -> str:
        """The value a limit counts by, in braces: ``"{demo-pro}"``, ``"{203.0.113.7}"``.

        The braces are a Redis Cluster hash tag: every counter of one caller
        (``scanner:api:{demo-pro}``, ``scanner:scans:{demo-pro}``) lands on one
        slot, so one script can check and charge them all atomically.
        """
        if len(by) == 1:
            return "{" + self._part(by[0], record, plan, ip, headers, params) + "}"
        return (
            "{" + "|".join(self._part(part, record, plan, ip, headers, params) for part in by) + "}"
        )

    def _part(
        self,
        part: str,
        record: KeyRecord | None,
        plan: PlanRecord | None,
        ip: str,
        headers: Mapping[str, str],
        params: Mapping[str, str],
    ) -> str:
        if part == "api_key":
            return record.id if record is not None else "anon:" + ip
        if part == "ip":
            return ip
        if part == "node":
            value = _header(headers, self._node_header) or params.get("node")
            return _checked_value(value, self._node_header_name)
        if part == "user":
            if record is not None:
                return "u:" + (record.user or record.id)
            value = _header(headers, self._user_header) if self._user_header else None
            return "u:" + _checked_value(value, self._user_header) if value else "anon:" + ip
        if part == "global":
            return "*"
        if part == "plan":
            return plan.name if plan is not None else "-"
        kind, _, name = part.partition(":")
        if kind == "header":
            return _checked_value(_header(headers, name.lower()), name)
        return _checked_value(params.get(name), "{" + name + "}")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header's value, as safe text: header text enters a key here (path
    parameters come from the path, escaped when it was routed: ``ratekeeper.text``)."""
    value = headers.get(name)
    if value and not value.isascii():
        return safe_text(value)
    return value


def _checked_value(value: str | None, what: str | None) -> str:
    """A value taken from the request, checked, with braces escaped (see ``Identifier.tag``)."""
    if not value:
        raise BadRequestError(f"missing {what}")
    if len(value) > MAX_IDENTITY:
        raise BadRequestError(f"{what} is longer than {MAX_IDENTITY} characters")
    if "{" in value or "}" in value or "%" in value:
        value = value.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return value
