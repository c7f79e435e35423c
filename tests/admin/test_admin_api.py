"""The admin API through HTTP: exact statuses and bodies, and nothing changed by a refusal."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from admin_support import AUTH, T0, TOKEN, TinyService, app_of
from starlette.routing import Mount, Route

from ratekeeper.registry import Registry
from ratekeeper.server.admin import openapi_paths
from support.clock import Clock

ACTOR = "admin@127.0.0.1"  # httpx.ASGITransport's client address


async def snapshot(service: TinyService) -> tuple[object, ...]:
    """What a refused request must leave as it was: keys, audit, counters, blocks."""
    registry = service.registry
    assert registry is not None
    usage = await service.limiter.usage("demo-free")
    return (
        registry.list_keys(include_revoked=True),
        registry.audit(),
        registry.revision(),
        usage,
        service.store.lockouts.blocks(),
        service.policy,
    )


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/admin/keys", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def call(service: TinyService, raw: str, path: str = "/api/x") -> tuple[int, str | None]:
    decision = await service.limiter.check(path=path, headers={"X-API-Key": raw})
    return decision.status_code, decision.plan


# authentication first

UNAUTHORIZED = {
    "error": {
        "code": "unauthorized",
        "message": "missing or wrong admin token: send Authorization: Bearer <token>",
    }
}
REQUESTS = [
    ("GET", "/admin/keys", None),
    ("POST", "/admin/keys", b'{"plan": "pro", "name": "acme"}'),
    ("POST", "/admin/keys", b"{not json"),
    ("GET", "/admin/keys/demo-free", None),
    ("PATCH", "/admin/keys/demo-free", b'{"plan": "pro"}'),
    ("DELETE", "/admin/keys/demo-free", None),
    ("GET", "/admin/keys/demo-free/usage", None),
    ("POST", "/admin/keys/demo-free/reset", None),
    ("GET", "/admin/blocks", None),
    ("DELETE", "/admin/blocks/shop:lockout:login:{203.0.113.9}", None),
    ("GET", "/admin/audit?since=yesterday&limit=-4", None),
    ("POST", "/admin/policy/reload", None),
    ("PUT", "/admin/keys", b"[]"),
    ("GET", "/admin/no/such/path", None),
]
NOT_THE_TOKEN = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="longer-token"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, id="other-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="empty-token"),
    pytest.param({"X-Admin-Token": TOKEN}, id="other-header"),
]


@pytest.mark.parametrize("headers", NOT_THE_TOKEN)
@pytest.mark.parametrize(("method", "path", "body"), REQUESTS)
async def test_without_the_token_every_request_is_401_and_changes_nothing(
    client: httpx.AsyncClient,
    service: TinyService,
    headers: dict[str, str],
    method: str,
    path: str,
    body: bytes | None,
) -> None:
    await call(service, "demo-free")  # a counter to keep
    before = await snapshot(service)
    response = await client.request(method, path, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["www-authenticate"] == 'Bearer realm="ratekeeper admin"'
    assert response.headers["cache-control"] == "no-store"
    assert TOKEN not in response.text
    assert await snapshot(service) == before
    assert service.reloads == []


async def test_without_a_configured_token_the_admin_api_is_not_there(
    service: TinyService,
) -> None:
    transport = httpx.ASGITransport(app=app_of(service, token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        response = await client.get("/admin/keys", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not_found",
            "message": "the admin API is off: no admin token is configured",
        }
    }


async def test_the_token_is_the_services_own_unless_given(service: TinyService) -> None:
    service.admin_token = "from-the-service"  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app_of(service, token=None))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        assert (await client.get("/admin/keys", headers=AUTH)).status_code == 401
        good = {"Authorization": "Bearer from-the-service"}
        assert (await client.get("/admin/keys", headers=good)).status_code == 200


async def test_an_unknown_path_or_method_is_a_json_404_or_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/nothing", headers=AUTH)
    assert (response.status_code, response.json()) == (
        404, {"error": {"code": "not_found", "message": "no such admin path"}}
    )  # fmt: skip
    response = await client.put("/admin/keys", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json() == {
        "error": {
            "code": "method_not_allowed",
            "message": "PUT is not allowed here; allowed: GET, HEAD, POST",
        }
    }


# keys


async def test_a_created_key_is_shown_once_and_known_at_once(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    response = await client.post(
        "/admin/keys",
        json={"plan": "pro", "name": "acme", "id": "acme-1", "user": "u-7"},
        headers=AUTH,
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    raw = body.pop("key")
    assert raw.startswith("rk_")
    assert len(raw) == 46
    assert body.pop("created_at").startswith("20")
    assert body == {
        "id": "acme-1", "name": "acme", "plan": "pro", "user": "u-7", "limits": {},
        "revoked_at": None, "source": "registry",
    }  # fmt: skip
    assert await call(service, raw) == (200, "pro")  # this replica knows it now
    listed = await client.get("/admin/keys", headers=AUTH)
    one = await client.get("/admin/keys/acme-1", headers=AUTH)
    audit = await client.get("/admin/audit", headers=AUTH)
    for later in (listed, one, audit):
        assert later.status_code == 200
        assert raw not in later.text  # never echoed again
    assert one.json() == {**body, "created_at": one.json()["created_at"]}
    (event,) = audit.json()["events"]
    assert event["kind"] == "key.create"
    assert event["actor"] == ACTOR
    assert event["target"] == "acme-1"
    assert event["detail"] == {"name": "acme", "plan": "pro", "user": "u-7", "limits": {}}


async def test_the_list_has_the_registrys_keys_and_the_policy_files(
    client: httpx.AsyncClient,
) -> None:
    await create(client, plan="free", id="a-key", limits={"api": "7/minute"})
    await create(client, plan="pro", id="gone")
    await client.delete("/admin/keys/gone", headers=AUTH)
    response = await client.get("/admin/keys", headers=AUTH)
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert [(key["id"], key["source"], key["plan"], key["limits"]) for key in keys] == [
        ("a-key", "registry", "free", {"api": "7/minute"}),
        ("demo-free", "policy", "free", {}),
    ]
    every = (await client.get("/admin/keys?include_revoked=true", headers=AUTH)).json()["keys"]
    assert [key["id"] for key in every] == ["a-key", "demo-free", "gone"]
    assert every[2]["revoked_at"] is not None
    bad = await client.get("/admin/keys?include_revoked=maybe", headers=AUTH)
    assert (bad.status_code, bad.json()["error"]["message"]) == (
        422, "include_revoked must be true or false"
    )  # fmt: skip


async def test_a_registry_key_with_a_policy_keys_id_shadows_it(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    await create(client, plan="pro", id="demo-free")
    keys = (await client.get("/admin/keys", headers=AUTH)).json()["keys"]
    assert [(key["id"], key["source"]) for key in keys] == [("demo-free", "registry")]
    assert await call(service, "demo-free") == (401, None)  # the registry's key wins


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 422, ("invalid_request", "the body is not valid JSON")),
        (b"[" * 30_000 + b"]" * 30_000, 422, ("invalid_request", "the body is not valid JSON")),
        (b"[1, 2]", 422, ("invalid_request", "the body must be a JSON object")),
        (b'{"plan": 7}', 422, ("invalid_request", "plan must be a string")),
        (b'{"plan": "pro", "limits": "fast"}', 422,
         ("invalid_request", "limits must be an object or null")),
        (b'{"plan": "pro", "key": "rk_mine"}', 422,
         ("invalid_request", "unknown field 'key'; the fields are: id, limits, name, plan, user")),
        (b'{"name": "acme"}', 422, ("invalid_request", "plan is required")),
        (b'{"plan": "gold"}', 422,
         ("invalid_key", "policy 'shop' has no plan 'gold' (its plans: anonymous, free, pro)")),
        (b'{"plan": "pro", "limits": {"logins": "5/minute"}}', 422,
         ("invalid_key", "limits.logins: limit 'logins' has one value for every caller (no plan "
          "sets it): a key can set only limits that a plan sets, caps and limits without a "
          "default rate")),
        (b'{"plan": "pro", "id": "demo free"}', 422,
         ("invalid_key", "key id 'demo free' is not a name: 1 to 64 letters, digits, '_', '.' "
          "or '-', starting with a letter or digit")),
        (b'{"plan": "pro", "id": "taken"}', 409,
         ("conflict", "a key with id 'taken' exists already")),
        (b"x" * 70_000, 422, ("invalid_request", "the body is over 65536 bytes")),
    ],
)  # fmt: skip
async def test_a_bad_create_is_refused_with_why_and_writes_nothing(
    client: httpx.AsyncClient,
    service: TinyService,
    body: bytes,
    status: int,
    error: tuple[str, str],
) -> None:
    await create(client, plan="free", id="taken")
    before = await snapshot(service)
    response = await client.post("/admin/keys", content=body, headers=AUTH)
    assert response.status_code == status
    assert response.json() == {"error": {"code": error[0], "message": error[1]}}
    assert await snapshot(service) == before


async def test_a_key_is_read_by_its_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/keys/demo-free", headers=AUTH)
    assert response.json() == {
        "id": "demo-free", "name": "", "plan": "free", "user": None, "limits": {},
        "created_at": None, "revoked_at": None, "source": "policy",
    }  # fmt: skip
    missing = await client.get("/admin/keys/ghost", headers=AUTH)
    assert (missing.status_code, missing.json()) == (
        404, {"error": {"code": "not_found", "message": "no key with id 'ghost'"}}
    )  # fmt: skip


async def test_patch_changes_plan_and_overrides_at_once_on_this_replica(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    raw = (await create(client, plan="free", id="acme"))["key"]
    response = await client.patch("/admin/keys/acme", json={"plan": "pro"}, headers=AUTH)
    assert response.status_code == 200
    assert (response.json()["plan"], response.json()["limits"]) == ("pro", {})
    assert await call(service, raw) == (200, "pro")
    response = await client.patch(
        "/admin/keys/acme", json={"limits": {"api": "1/minute"}}, headers=AUTH
    )
    assert response.json()["limits"] == {"api": "1/minute"}
    assert await call(service, raw) == (429, "pro")  # one used above, its own 1/minute
    response = await client.patch("/admin/keys/acme", json={"unlimited": True}, headers=AUTH)
    assert response.json()["limits"] == {"api": "unlimited", "slots": "unlimited"}
    assert await call(service, raw) == (200, "pro")
    response = await client.patch("/admin/keys/acme", json={"limits": None}, headers=AUTH)
    assert response.json()["limits"] == {}
    events = (await client.get("/admin/audit?key=acme", headers=AUTH)).json()["events"]
    assert [(event["kind"], event["detail"]) for event in events] == [
        ("key.create", {"name": "", "plan": "free", "user": None, "limits": {}}),
        ("key.plan", {"plan": "pro", "from": "free"}),
        ("key.limits", {"limits": {"api": "1/minute"}}),
        ("key.limits", {"limits": {"api": "unlimited", "slots": "unlimited"}}),
        ("key.limits", {"limits": {}}),
    ]


@pytest.mark.parametrize(
    ("key_id", "body", "status", "error"),
    [
        ("acme", {}, 422, ("invalid_request", "nothing to change: give plan, limits or unlimited")),
        ("acme", {"plan": "gold", "limits": {"api": "1/minute"}}, 422,
         ("invalid_key", "policy 'shop' has no plan 'gold' (its plans: anonymous, free, pro)")),
        ("acme", {"plan": "pro", "limits": {"api": "fast"}}, 422, ("invalid_key", None)),
        ("acme", {"unlimited": False}, 422,
         ("invalid_request", "unlimited takes true, and no limits beside it")),
        ("acme", {"unlimited": True, "limits": {}}, 422,
         ("invalid_request", "unlimited takes true, and no limits beside it")),
        ("acme", {"plan": ["pro"]}, 422, ("invalid_request", "plan must be a string")),
        ("ghost", {"plan": "pro"}, 404, ("not_found", "no key with id 'ghost'")),
        ("demo-free", {"plan": "pro"}, 409,
         ("policy_key", "key 'demo-free' is declared in the policy file, not in the registry: "
          "it cannot be changed here; edit the policy file and reload it")),
    ],
)  # fmt: skip
async def test_a_bad_patch_is_refused_with_why_and_changes_nothing(
    client: httpx.AsyncClient,
    service: TinyService,
    key_id: str,
    body: dict[str, Any],
    status: int,
    error: tuple[str, str | None],
) -> None:
    await create(client, plan="free", id="acme")
    before = await snapshot(service)
    response = await client.patch(f"/admin/keys/{key_id}", json=body, headers=AUTH)
    assert response.status_code == status
    found = response.json()["error"]
    assert found["code"] == error[0]
    if error[1] is not None:
        assert found["message"] == error[1]
    assert await snapshot(service) == before


async def test_delete_revokes_at_once_and_only_once(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    raw = (await create(client, plan="pro", id="acme"))["key"]
    response = await client.delete("/admin/keys/acme", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert await call(service, raw) == (401, None)
    again = await client.delete("/admin/keys/acme", headers=AUTH)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert again.json()["error"]["message"].startswith("key 'acme' was revoked at 20")
    changed = await client.patch("/admin/keys/acme", json={"plan": "free"}, headers=AUTH)
    assert changed.status_code == 409
    policy_key = await client.delete("/admin/keys/demo-free", headers=AUTH)
    assert (policy_key.status_code, policy_key.json()) == (
        409,
        {
            "error": {
                "code": "policy_key",
                "message": "key 'demo-free' is declared in the policy file, not in the registry: "
                "it cannot be revoked here; edit the policy file and reload it",
            }
        },
    )
    assert await call(service, "demo-free") == (200, "free")


# usage and counters


async def test_usage_is_what_is_left_now_and_reading_it_takes_nothing(
    client: httpx.AsyncClient, service: TinyService, clock: Clock
) -> None:
    raw = (await create(client, plan="pro", id="acme"))["key"]
    for _ in range(3):
        await call(service, raw)
    clock.t = T0 + 5
    response = await client.get("/admin/keys/acme/usage", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "id": "acme",
        "plan": "pro",
        "limits": [
            {"name": "api", "limit": 10, "remaining": 7, "reset": T0 + 60, "window": 60.0,
             "shared": False},
            {"name": "slots", "limit": 4, "remaining": 4, "reset": None, "window": None,
             "shared": False},
        ],
    }  # fmt: skip
    again = await client.get("/admin/keys/acme/usage", headers=AUTH)
    assert again.json() == response.json()
    policy_key = await client.get("/admin/keys/demo-free/usage", headers=AUTH)
    assert policy_key.json()["limits"][0]["remaining"] == 5
    missing = await client.get("/admin/keys/ghost/usage", headers=AUTH)
    assert (missing.status_code, missing.json()) == (
        404, {"error": {"code": "not_found", "message": "no live key with id 'ghost'"}}
    )  # fmt: skip


async def test_reset_gives_a_key_its_quota_back_and_is_audited(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    raw = (await create(client, plan="free", id="acme"))["key"]
    assert [(await call(service, raw))[0] for _ in range(6)] == [200] * 5 + [429]
    response = await client.post("/admin/keys/acme/reset", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"id": "acme", "counters": 1})
    assert await call(service, raw) == (200, "free")
    usage = (await client.get("/admin/keys/acme/usage", headers=AUTH)).json()
    assert usage["limits"][0]["remaining"] == 4
    (event,) = (await client.get("/admin/audit?kind=key.reset", headers=AUTH)).json()["events"]
    assert (event["actor"], event["target"], event["detail"]) == (ACTOR, "acme", {"counters": 1})
    missing = await client.post("/admin/keys/ghost/reset", headers=AUTH)
    assert missing.status_code == 404


# blocks


async def test_blocks_are_listed_and_lifted_with_an_audit_row(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    for _ in range(2):
        decision = await service.limiter.check(
            method="POST", path="/login", client_ip="203.0.113.9"
        )
        await service.limiter.record_response(decision, 401)
    refused = await service.limiter.check(method="POST", path="/login", client_ip="203.0.113.9")
    assert (refused.status_code, refused.outcome) == (429, "blocked")
    response = await client.get("/admin/blocks", headers=AUTH)
    assert response.status_code == 200
    (block,) = response.json()["blocks"]
    assert block == {
        "key": "shop:lockout:login:{203.0.113.9}", "until": T0 + 900, "failures": 0, "streak": 1
    }  # fmt: skip
    lifted = await client.delete("/admin/blocks/shop:lockout:login:{203.0.113.9}", headers=AUTH)
    assert (lifted.status_code, lifted.json()) == (
        200, {"key": "shop:lockout:login:{203.0.113.9}", "lifted": True}
    )  # fmt: skip
    assert (await client.get("/admin/blocks", headers=AUTH)).json() == {"blocks": []}
    allowed = await service.limiter.check(method="POST", path="/login", client_ip="203.0.113.9")
    assert allowed.allowed
    (event,) = (await client.get("/admin/audit?kind=block.lift", headers=AUTH)).json()["events"]
    assert (event["actor"], event["target"]) == (ACTOR, "shop:lockout:login:{203.0.113.9}")
    again = await client.delete("/admin/blocks/shop:lockout:login:{203.0.113.9}", headers=AUTH)
    assert (again.status_code, again.json()) == (
        404,
        {
            "error": {
                "code": "not_found",
                "message": "no block on 'shop:lockout:login:{203.0.113.9}'",
            }
        },
    )


# the audit log


async def test_the_audit_log_is_read_by_time_key_kind_and_limit(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    await create(client, plan="free", id="a")
    await create(client, plan="free", id="b")
    await client.delete("/admin/keys/a", headers=AUTH)
    events = (await client.get("/admin/audit", headers=AUTH)).json()["events"]
    assert [(event["kind"], event["target"]) for event in events] == [
        ("key.create", "a"), ("key.create", "b"), ("key.revoke", "a")
    ]  # fmt: skip
    assert set(events[0]) == {"id", "at", "actor", "kind", "target", "detail"}
    assert events[0]["at"].endswith("Z")
    by_key = (await client.get("/admin/audit?key=a", headers=AUTH)).json()["events"]
    assert [event["kind"] for event in by_key] == ["key.create", "key.revoke"]
    one = (await client.get("/admin/audit?kind=key.create&limit=1", headers=AUTH)).json()
    assert [event["target"] for event in one["events"]] == ["a"]
    last = events[-1]["at"]
    since = (await client.get(f"/admin/audit?since={last}", headers=AUTH)).json()["events"]
    assert [event["kind"] for event in since] == ["key.revoke"]
    later = (await client.get("/admin/audit?since=4102444800", headers=AUTH)).json()
    assert later == {"events": []}  # 2100-01-01, as epoch seconds


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since must be ISO 8601 or epoch seconds, got 'yesterday'"),
        ("since=1e400", "since is out of range: '1e400'"),
        ("limit=0", "limit must be 1 to 1000, got '0'"),
        ("limit=1001", "limit must be 1 to 1000, got '1001'"),
        ("limit=ten", "limit must be 1 to 1000, got 'ten'"),
        ("actor=me", "unknown parameter 'actor'; use since, key, kind, limit"),
    ],
)
async def test_a_bad_audit_query_is_422(
    client: httpx.AsyncClient, query: str, message: str
) -> None:
    response = await client.get(f"/admin/audit?{query}", headers=AUTH)
    assert (response.status_code, response.json()) == (
        422, {"error": {"code": "invalid_request", "message": message}}
    )  # fmt: skip


# the policy


async def test_a_reload_reads_the_file_again_or_keeps_the_policy_in_force(
    client: httpx.AsyncClient, service: TinyService
) -> None:
    service.policy_path.write_text(
        service.policy_path.read_text().replace("free: {limits: {api: 5/minute}}",
                                                "free: {limits: {api: 50/minute}}"),
    )  # fmt: skip
    response = await client.post("/admin/policy/reload", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"reloaded": True, "policy": "shop"})
    assert service.policy.plans["free"].limits["api"] != ()
    assert service.reloads == [ACTOR]
    in_force = service.policy
    service.policy_path.write_text("version: 1\nlimits: [\n")
    refused = await client.post("/admin/policy/reload", headers=AUTH)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "policy_refused"
    assert error["message"].startswith(
        "the policy was not reloaded; the one in force stays: " + str(service.policy_path)
    )
    assert service.policy is in_force
    bad = await client.post("/admin/policy/reload", json={"path": "/etc/passwd"}, headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["error"] == {
        "code": "invalid_request", "message": "unknown field 'path'; it takes none"
    }  # fmt: skip
    assert service.reloads == [ACTOR, ACTOR]


# without a registry


async def test_without_a_registry_keys_are_the_policy_files_only(
    policy_path: Any, clock: Clock
) -> None:
    service = TinyService(policy_path, None, clock)
    transport = httpx.ASGITransport(app=app_of(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
        listed = await client.get("/admin/keys", headers=AUTH)
        assert [key["id"] for key in listed.json()["keys"]] == ["demo-free"]
        created = await client.post("/admin/keys", json={"plan": "pro"}, headers=AUTH)
        assert (created.status_code, created.json()) == (
            409,
            {
                "error": {
                    "code": "no_registry",
                    "message": "this service has no registry of keys (start it with "
                    "--registry URL)",
                }
            },
        )
        reset = await client.post("/admin/keys/demo-free/reset", headers=AUTH)
        assert reset.json() == {"id": "demo-free", "counters": 0}


# described as served


def test_the_description_names_every_route_served_and_nothing_else(
    service: TinyService,
) -> None:
    served: set[tuple[str, str]] = set()

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                served.update(
                    (method, prefix + re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path))
                    for method in route.methods or ()
                    if method != "HEAD"
                )

    walk(list(app_of(service).routes), "")
    described = {
        (method.upper(), path)
        for path, operations in openapi_paths().items()
        for method in operations
    }
    assert served == described
    assert ("DELETE", "/admin/blocks/{block_key}") in served


async def test_ten_wrong_tokens_block_the_address_even_for_the_right_one_then_it_ends(
    service: TinyService, clock: Clock
) -> None:
    def from_address(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app_of(service), client=(ip, 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://admin.test")

    wrong = {"Authorization": "Bearer guess"}
    async with from_address("203.0.113.9") as guesser, from_address("198.51.100.1") as other:
        codes = [(await guesser.get("/admin/keys", headers=wrong)).status_code for _ in range(10)]
        blocked = await guesser.get("/admin/keys", headers=AUTH)  # the right token waits too
        elsewhere = await other.get("/admin/keys", headers=AUTH)
        listed = [block.key for block in service.store.lockouts.blocks()]
        clock.t += 600  # the block's ten minutes
        after = await guesser.get("/admin/keys", headers=AUTH)

    assert codes == [401] * 10
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_wrong_tokens"
    assert blocked.headers["Retry-After"] == "600"
    assert elsewhere.status_code == 200  # counted per address
    assert after.status_code == 200
    assert listed == ["ratekeeper:admin-token:{203.0.113.9}"]  # listed with the others, liftable
