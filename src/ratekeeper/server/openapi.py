"""``/openapi.json``: the decision API and the admin API, described (OpenAPI 3.1).

Written by hand, next to nothing else: the routes are few and their JSON is
the contract clients are written against. A test compares it with the routes
the app serves, both ways (tests/server/test_openapi.py), so a route added or
removed without its description fails there. Forward-auth and the admin API
are described only when they are mounted; the admin module describes its own
routes (``ratekeeper.server.admin.openapi_paths``).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from .decisions import MOST_BATCH, MOST_COST, MOST_HEADERS

__all__ = ["openapi_document"]

#: every key of a decision's JSON, always present (``null`` when it does not apply)
_DECISION_KEYS = ("allowed", "status", "plan", "category", "key_id", "retry_after", "reset",
                  "limits", "headers", "body", "lease")  # fmt: skip
_ERROR = {"$ref": "#/components/schemas/Error"}
_DECISION = {"$ref": "#/components/schemas/Decision"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    said = {
        400: "A path that is not valid UTF-8 text (`invalid_path`); nothing was charged.",
        401: "The check token or admin token is missing or wrong (`unauthorized`).",
        404: "Nothing of that name (`not_found`, `unknown_lease`).",
        409: "The change conflicts with the current state; the message says why.",
        422: "A malformed call (`invalid_request`); nothing was charged or changed.",
        503: "The store cannot be reached.",
    }
    return {str(status): _json(_ERROR, said[status]) for status in statuses}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_DECISION_API: dict[str, Any] = {
    "/v1/check": {
        "post": {
            "summary": "Decide one request and charge its limits (all or none)",
            "description": (
                "Answers with the decision's own status (200, 429, 401, 400, 503). An admitted "
                "request over a concurrency cap's limit takes a slot: give it back with "
                "/v1/release and the `lease` handle (else it ends with the policy's lease TTL)."
            ),
            "requestBody": _body({"$ref": "#/components/schemas/CheckCall"}),
            "responses": {
                "200": _json(_DECISION, "Admitted (or exempt)."),
                "429": _json(_DECISION, "Refused: over a limit, over a cap, or blocked."),
                "401": _json(_DECISION, "Refused: no API key, or an unknown one (per policy)."),
                "400": _json(
                    {"oneOf": [_DECISION, _ERROR]},
                    "Refused by the policy (a limit's key is missing), or a path that is "
                    "not valid text (`invalid_path`).",
                ),
                "503": _json(_DECISION, "The store cannot decide and the policy fails closed."),
                **_errors(401, 422),
            },
        }
    },
    "/v1/check:batch": {
        "post": {
            "summary": "Decide several requests, one by one, in order",
            "description": f"At most {MOST_BATCH:,} calls; one malformed call refuses all.",
            "requestBody": _body(
                {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/CheckCall"},
                    "minItems": 1,
                    "maxItems": MOST_BATCH,
                }
            ),
            "responses": {
                "200": _json({"type": "array", "items": _DECISION}, "One decision per call."),
                **_errors(400, 401, 422),
            },
        }
    },
    "/v1/release": {
        "post": {
            "summary": "Give back the concurrency slots of a decision",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["lease"],
                    "additionalProperties": False,
                    "properties": {"lease": {"type": "string"}},
                }
            ),
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {"released": {"type": "integer", "minimum": 0}},
                    },
                    "How many slots were still held (0 when given back before).",
                ),
                **_errors(401, 404, 422),
            },
        }
    },
    "/v1/report": {
        "post": {
            "summary": "The upstream's status for a decided request: feeds its lockouts",
            "description": (
                "Send the fields of the /v1/check call again, with the status the upstream "
                "answered. Each lockout of that request that counts the status as a failure "
                "is fed, as the middleware does."
            ),
            "requestBody": _body({"$ref": "#/components/schemas/Report"}),
            "responses": {
                "200": _json({"$ref": "#/components/schemas/ReportAnswer"}, "What was fed."),
                **_errors(400, 401, 422, 503),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Is the service up and its store reachable? (no token)",
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Health"}, "Up."),
                "503": _json({"$ref": "#/components/schemas/Health"}, "The store is unreachable."),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (the metrics token, when one is set)",
            "responses": {
                "200": {
                    "description": "The Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document (no token)",
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
        }
    },
}

_AUTHORIZE: dict[str, Any] = {
    "/v1/authorize": {
        "get": {
            "summary": "Forward-auth: nginx auth_request, Traefik forwardAuth, Caddy forward_auth",
            "description": (
                "Method and URI from X-Original-Method / X-Original-URI or X-Forwarded-Method / "
                "X-Forwarded-Uri. 200 with the rate-limit headers, or the refusal. "
                "`?deny_status=403` answers every refusal 403 with X-Ratekeeper-Status. No "
                "concurrency leases, no lockouts (docs/forward-auth.md)."
            ),
            "parameters": [
                {"name": "deny_status", "in": "query", "schema": {"type": "integer"}},
            ],
            "responses": {
                "200": {"description": "Admitted: copy the X-RateLimit-* fields."},
                "400": {"description": "The original URI is not valid text."},
                "401": {"description": "No API key, or an unknown one."},
                "403": {"description": "A refusal, with ?deny_status=403."},
                "429": {"description": "Refused, with Retry-After and the policy's body."},
                "503": {"description": "The store cannot decide."},
            },
        }
    },
}


_SCHEMAS: dict[str, Any] = {
    "CheckCall": {
        "type": "object",
        "required": ["path", "client_ip"],
        "additionalProperties": False,
        "properties": {
            "method": {"type": "string", "default": "GET"},
            "path": {"type": "string", "description": "The decoded path, without the query."},
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "maxProperties": MOST_HEADERS,
                "description": "The request's header fields (any case).",
            },
            "client_ip": {
                "type": "string",
                "description": (
                    "The caller's peer; X-Forwarded-For in `headers` is believed only from the "
                    "policy's trusted proxies."
                ),
            },
            "cost": {"type": "integer", "minimum": 1, "maximum": MOST_COST, "default": 1},
        },
    },
    "Limit": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "limit": {"type": "integer"},
            "remaining": {"type": "integer"},
            "reset": {"type": "integer", "description": "Epoch seconds, rounded up."},
            "window": {"type": "number", "description": "Seconds."},
        },
    },
    "Decision": {
        "type": "object",
        "required": list(_DECISION_KEYS),
        "properties": {
            "allowed": {"type": "boolean"},
            "status": {"type": "integer"},
            "plan": {"type": ["string", "null"]},
            "category": {"type": ["string", "null"]},
            "key_id": {"type": ["string", "null"], "description": "Never the key itself."},
            "retry_after": {"type": "integer", "description": "Seconds; 0: no wait."},
            "reset": {"type": ["integer", "null"], "description": "Epoch seconds."},
            "limits": {"type": "array", "items": {"$ref": "#/components/schemas/Limit"}},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"description": "The policy's body of a refusal (parsed JSON); else null."},
            "lease": {
                "type": ["string", "null"],
                "description": "The handle of the concurrency slots taken, for /v1/release.",
            },
        },
    },
    "Report": {
        "allOf": [
            {"$ref": "#/components/schemas/CheckCall"},
            {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "integer", "minimum": 100, "maximum": 599}},
            },
        ]
    },
    "ReportAnswer": {
        "type": "object",
        "properties": {
            "lockouts": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "failure": {"type": "boolean"},
                        "blocked": {"type": "boolean"},
                        "until": {"type": ["integer", "null"]},
                    },
                },
            }
        },
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "store": {"enum": ["ok", "unreachable"]},
            "degraded": {"type": "boolean"},
            "policy": {"type": "string"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
}


_ENVOY_JSON: dict[str, Any] = {
    "/json": {
        "post": {
            "summary": "Envoy's ShouldRateLimit over HTTP, in protobuf's JSON mapping, as the "
            "reference service (envoyproxy/ratelimit) serves it (docs/envoy.md)",
            "security": [{"check": []}, {}],
            "requestBody": _json(
                {"type": "object", "description": "a RateLimitRequest: domain, descriptors"},
                "The request.",
            ),
            "responses": {
                "200": _json({"type": "object"}, "Allowed: the RateLimitResponse."),
                "429": _json({"type": "object"}, "Over a limit: the RateLimitResponse."),
                "400": _json({"$ref": "#/components/schemas/Error"}, "Not such a request."),
                "404": _json({"$ref": "#/components/schemas/Error"}, "No envoy: section."),
                "503": _json({"$ref": "#/components/schemas/Error"}, "The store cannot decide."),
            },
        }
    }
}


def openapi_document(
    *, admin_paths: dict[str, Any] | None = None, envoy_json: bool = False
) -> dict[str, Any]:
    """The description of what an app serves: the admin API's paths only when it is mounted,
    ``/json`` only when it is served."""
    paths = {**_DECISION_API, **_AUTHORIZE}
    if admin_paths is not None:
        paths.update(admin_paths)
    if envoy_json:
        paths.update(_ENVOY_JSON)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ratekeeper decision service",
            "version": version("ratekeeper"),
            "description": "Rate-limit decisions for any API (docs/service.md).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "check": {"type": "http", "scheme": "bearer"},
                "admin": {"type": "http", "scheme": "bearer"},
            },
        },
    }
