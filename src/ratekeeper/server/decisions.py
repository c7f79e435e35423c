"""The decision API's JSON: calls read strictly, decisions written plainly.

A call to ``/v1/check`` is read here into a :class:`CheckCall` or refused
with an :class:`InvalidRequestError` *before* anything is charged: bad JSON,
wrong types, unknown fields, a cost that is not an integer from 1 to
:data:`MOST_COST`, more than :data:`MOST_HEADERS` headers, text that is not
valid. Malformed is 422 (``invalid_request``); a path that is not valid text
(invalid UTF-8 in the body, or a lone surrogate escape) is 400
(``invalid_path``), the answer a server gives a request line it cannot read.

What a decision says (:func:`decision_json`) holds no counter key and no API
key: the plan, category and key *id*, the numbers of each applied limit, the
header fields the app should send, the policy's body for a refusal and the
lease handle, sealed (:class:`~ratekeeper.engine.LeaseSeal`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..algorithms import ALGORITHMS
from ..engine import LeaseSeal, PolicyDecision, Prepared
from ..http.answers import retry_after_seconds
from ..limiter import AsyncLimiter

__all__ = [
    "MOST_BATCH",
    "MOST_BODY",
    "MOST_COST",
    "MOST_HEADERS",
    "CheckCall",
    "InvalidRequestError",
    "ReportCall",
    "check_call",
    "check_calls",
    "decision_json",
    "encode_json",
    "error_json",
    "lease_token",
    "parse_body",
    "report_call",
]

#: the largest request body read, in bytes (1 MB); a larger one is 422
MOST_BODY = 1_048_576
#: the most header fields one call may carry
MOST_HEADERS = 1_000
#: the most calls one ``/v1/check:batch`` may carry
MOST_BATCH = 1_000
#: the largest cost: what every algorithm counts exactly (algorithms/bounds.py), so
#: that no call of a batch can be refused by the engine after others were charged
MOST_COST = min(algorithm.max_limit for algorithm in ALGORITHMS.values())
#: the longest path, method, header name and client address read
_MOST_PATH = 16_384
_MOST_IP = 256
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")

_CHECK_FIELDS = frozenset({"method", "path", "headers", "client_ip", "cost"})
_REPORT_FIELDS = _CHECK_FIELDS | {"status"}


class InvalidRequestError(Exception):
    """A call the service will not decide; nothing was charged.

    ``status`` 422 (``invalid_request``) or 400 (``invalid_path``).
    """

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


#: JSON as Starlette's ``JSONResponse`` writes it, with one encoder made once
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def encode_json(content: Any) -> bytes:
    """``content`` as the UTF-8 bytes of compact JSON (the answers of the hot paths)."""
    return _ENCODER.encode(content).encode("utf-8")


def error_json(code: str, message: str) -> dict[str, Any]:
    """The one shape of every error the service answers: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": code, "message": message}}


@dataclass(frozen=True, slots=True)
class CheckCall:
    """One request to decide, as ``AsyncLimiter.check`` takes it."""

    method: str
    path: str
    headers: dict[str, str]
    client_ip: str
    cost: int = 1

    async def decide(self, limiter: AsyncLimiter) -> PolicyDecision:
        """The decision on this call, its caps taken (``/v1/check`` hands out their lease)."""
        return await limiter.check(
            method=self.method,
            path=self.path,
            headers=self.headers,
            client_ip=self.client_ip,
            cost=self.cost,
            lease=True,
        )

    def plan(self, limiter: AsyncLimiter) -> Prepared | PolicyDecision:
        """The call planned (routed, identified, its charges and lockouts), nothing charged;
        ``ValueError`` for a cost the engine refuses."""
        return limiter.prepare(self.method, self.path, self.headers, self.client_ip, self.cost)


@dataclass(frozen=True, slots=True)
class ReportCall:
    """The upstream's ``status`` for a request decided before (``/v1/report``)."""

    call: CheckCall
    status: int


def parse_body(body: bytes) -> Any:
    """The JSON of a request body; bytes that are not UTF-8 become lone surrogates.

    So a path holding invalid UTF-8 is read (and refused with 400 by
    :func:`check_call`) rather than failing the whole body as bad JSON.
    """
    if len(body) > MOST_BODY:
        raise InvalidRequestError(f"the body is over {MOST_BODY:,} bytes")
    try:
        return json.loads(body.decode("utf-8", "surrogateescape"))
    except RecursionError:
        raise InvalidRequestError("the body nests too deeply") from None
    except ValueError as error:
        raise InvalidRequestError(f"the body is not JSON: {error}") from None


def check_call(data: Any, where: str = "") -> CheckCall:
    """The call ``data`` (a parsed JSON object) asks to decide, or :class:`InvalidRequestError`."""
    fields = _object(data, where, _CHECK_FIELDS)
    return _call(fields, where)


def check_calls(data: Any) -> list[CheckCall]:
    """The calls of a batch: a JSON list of 1 to :data:`MOST_BATCH` calls, all valid."""
    if not isinstance(data, list):
        raise InvalidRequestError("the body must be a JSON list of calls")
    if not 0 < len(data) <= MOST_BATCH:
        raise InvalidRequestError(f"a batch holds 1 to {MOST_BATCH:,} calls, not {len(data):,}")
    return [check_call(item, f"[{index}]") for index, item in enumerate(data)]


def report_call(data: Any) -> ReportCall:
    """``/v1/report``: the fields of the call ``/v1/check`` decided, and the upstream's status."""
    fields = _object(data, "", _REPORT_FIELDS)
    status = fields.get("status")
    if status.__class__ is not int or not 100 <= status <= 599:
        raise InvalidRequestError("status: must be an HTTP status code, an integer from 100 to 599")
    return ReportCall(_call(fields, ""), status)


def lease_token(data: Any) -> str:
    """``/v1/release``: the lease handle ``/v1/check`` returned."""
    fields = _object(data, "", frozenset({"lease"}))
    token = fields.get("lease")
    if not isinstance(token, str) or not token:
        raise InvalidRequestError("lease: must be the lease handle /v1/check returned (a string)")
    return token


def _object(data: Any, where: str, allowed: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequestError(f"{where or 'the body'}: must be a JSON object")
    if data.keys() <= allowed:  # the usual call: no set made
        return data
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"{_at(where, unknown[0])}: unknown field (expected {', '.join(sorted(allowed))})"
        )
    return data


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _call(fields: Mapping[str, Any], where: str) -> CheckCall:
    method = fields.get("method", "GET")
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise InvalidRequestError(f'{_at(where, "method")}: must be an HTTP method, e.g. "GET"')
    path = fields.get("path")
    if not isinstance(path, str) or not path:
        raise InvalidRequestError(f"{_at(where, 'path')}: required, a non-empty string")
    if len(path) > _MOST_PATH:
        raise InvalidRequestError(f"{_at(where, 'path')}: longer than {_MOST_PATH:,} characters")
    if not _valid_text(path):
        raise InvalidRequestError(
            f"{_at(where, 'path')}: not valid UTF-8 text", status=400, code="invalid_path"
        )
    client_ip = fields.get("client_ip")
    if not isinstance(client_ip, str) or not client_ip or len(client_ip) > _MOST_IP:
        raise InvalidRequestError(
            f"{_at(where, 'client_ip')}: required, the address of the caller's peer (a string)"
        )
    if not _valid_text(client_ip):
        raise InvalidRequestError(f"{_at(where, 'client_ip')}: not valid text")
    cost = fields.get("cost", 1)
    if cost.__class__ is not int or not 1 <= cost <= MOST_COST:
        raise InvalidRequestError(
            f"{_at(where, 'cost')}: must be an integer from 1 to {MOST_COST:,}"
        )
    return CheckCall(method.upper(), path, _headers(fields.get("headers"), where), client_ip, cost)


def _headers(value: Any, where: str) -> dict[str, str]:
    at = _at(where, "headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{at}: must be an object of header names to string values")
    if len(value) > MOST_HEADERS:
        raise InvalidRequestError(f"{at}: more than {MOST_HEADERS:,} fields ({len(value):,})")
    for name, text in value.items():
        if not _TOKEN.fullmatch(name):
            raise InvalidRequestError(f"{at}: {name[:64]!r} is not a header name")
        if not isinstance(text, str):
            raise InvalidRequestError(f"{at}.{name}: must be a string")
        if not _valid_text(text):
            raise InvalidRequestError(f"{at}.{name}: not valid text")
    return value


def _valid_text(text: str) -> bool:
    """No lone surrogate (what undecodable bytes and ``\\udcXX`` escapes become)."""
    if text.isascii():  # a flag of the string: no encoding made
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# what a decision says


def decision_json(decision: PolicyDecision, seal: LeaseSeal) -> dict[str, Any]:
    """The JSON answer of ``decision``: every key always there, ``null`` when it does not apply.

    ``reset`` and each limit's ``reset`` are epoch seconds rounded up (as
    ``X-RateLimit-Reset``); ``retry_after`` whole seconds rounded up (as
    ``Retry-After``), 0 when there is nothing to wait for; ``window`` seconds.
    """
    limits = [
        {
            "name": status.name,
            "limit": status.limit,
            "remaining": status.remaining,
            "reset": math.ceil(status.reset_at),
            "window": _seconds(status.window),
        }
        for status in decision.statuses
        if not status.shadow
    ]
    waits = not decision.allowed and decision.retry_after > 0
    lease = decision.lease
    return {
        "allowed": decision.allowed,
        "status": decision.status_code,
        "plan": decision.plan,
        "category": decision.category,
        "key_id": decision.key_id,
        "retry_after": retry_after_seconds(decision.retry_after) if waits else 0,
        "reset": math.ceil(decision.reset_at) if limits or waits else None,
        "limits": limits,
        "headers": decision.headers,
        "body": _body(decision),
        "lease": seal.seal(lease) if lease is not None else None,
    }


def _seconds(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _body(decision: PolicyDecision) -> Any:
    """The policy's body of a refusal, parsed when it is JSON (else its text)."""
    if decision.allowed:
        return None
    body = decision.body
    if body is None:
        return None
    text = body.decode("utf-8", "replace")
    if "json" in (decision.content_type or ""):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text
