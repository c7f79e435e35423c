"""Which header fields cross the gateway, in each direction, and the ones it writes.

Hop-by-hop fields (RFC 9110 section 7.6.1) describe one connection, not the
message: ``Connection`` and every field it names, ``Keep-Alive``, ``TE``,
``Trailer``, ``Transfer-Encoding``, ``Upgrade`` and the ``Proxy-*`` fields.
The gateway drops them both ways; its own connections carry their own.

Towards the upstream the gateway also says who asked (docs/gateway.md):

- ``X-Forwarded-For``: the client's address appended to what it sent (several
  lines joined), so the chain of proxies stays readable;
- ``X-Forwarded-Proto``: the scheme the client used to reach the gateway,
  replacing any sent;
- ``Host``: the upstream's own (as nginx's ``proxy_pass`` does by default), the
  client's moved to ``X-Forwarded-Host``; with ``preserve_host`` the client's
  ``Host`` goes through unchanged and ``X-Forwarded-Host`` is left as sent.

Plain functions over the ASGI byte pairs: one pass over the fields, no
allocation beyond the list they return.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["HOP_BY_HOP", "request_headers", "response_headers"]

RawHeaders = list[tuple[bytes, bytes]]

#: hop-by-hop fields, lower-case (every ``proxy-*`` field is one too)
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
_FORWARDED_FOR = b"x-forwarded-for"
_FORWARDED_PROTO = b"x-forwarded-proto"
_FORWARDED_HOST = b"x-forwarded-host"
_HOST = b"host"
#: fields the gateway writes itself on the way up (the client's are read, not passed)
_REWRITTEN = frozenset({_FORWARDED_FOR, _FORWARDED_PROTO})


def _named_by_connection(value: bytes) -> set[bytes]:
    """The fields a ``Connection`` header names: hop-by-hop for this message too."""
    return {name.strip().lower() for name in value.split(b",") if name.strip()}


def _hop_by_hop(name: bytes) -> bool:
    return name in HOP_BY_HOP or name.startswith(b"proxy-")


def request_headers(
    fields: Iterable[tuple[bytes, bytes]],
    *,
    client: str | None,
    scheme: str,
    preserve_host: bool = False,
) -> RawHeaders:
    """The client's request fields (ASGI: lower-case names) as the upstream gets them."""
    out: RawHeaders = []
    named: set[bytes] | None = None
    forwarded_for: list[bytes] = []
    host: bytes | None = None
    for name, value in fields:
        if _hop_by_hop(name):
            if name == b"connection":
                named = (named or set()) | _named_by_connection(value)
            continue
        if name in _REWRITTEN:
            if name == _FORWARDED_FOR and value.strip():
                forwarded_for.append(value.strip())
            continue
        if name == _HOST:
            host = value
            if not preserve_host:
                continue
        elif name == _FORWARDED_HOST and not preserve_host:
            continue  # written below from the client's Host
        out.append((name, value))
    if named:
        out = [pair for pair in out if pair[0] not in named]
    if client:
        forwarded_for.append(client.encode("latin-1"))
    if forwarded_for:
        out.append((_FORWARDED_FOR, b", ".join(forwarded_for)))
    out.append((_FORWARDED_PROTO, scheme.encode("latin-1")))
    if host is not None and not preserve_host:
        out.append((_FORWARDED_HOST, host))
    return out


def response_headers(fields: Iterable[tuple[bytes, bytes]]) -> RawHeaders:
    """The upstream's response fields (any case) as the client gets them, names lower-cased."""
    out: RawHeaders = []
    named: set[bytes] | None = None
    for raw_name, value in fields:
        name = raw_name.lower()
        if _hop_by_hop(name):
            if name == b"connection":
                named = (named or set()) | _named_by_connection(value)
            continue
        out.append((name, value))
    if named:
        out = [pair for pair in out if pair[0] not in named]
    return out
