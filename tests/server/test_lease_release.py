"""Concurrency caps through ``/v1/check`` + ``/v1/release``: a slot taken, given back by handle.

A policy with a cap of one request in flight per client address: the second
check is 429 while the first holds its slot; releasing the first's lease
admits the third.
"""

from __future__ import annotations

from service_client import CAPPED, IP, T0, MakeService

from ratekeeper import MemoryStore
from support.clock import Clock

CALL = {"method": "GET", "path": "/reports/export", "client_ip": IP}


async def test_cap_1_second_check_429_release_third_200(make_service: MakeService) -> None:
    client = make_service(CAPPED)
    first = await client.check(CALL)
    assert first.status_code == 200
    lease = first.json()["lease"]
    assert isinstance(lease, str)
    assert lease

    second = await client.check(CALL)
    assert second.status_code == 429
    answer = second.json()
    assert (answer["allowed"], answer["lease"], answer["retry_after"]) == (False, None, 1)
    assert answer["headers"]["Retry-After"] == "1"

    released = await client.post("/v1/release", {"lease": lease})
    assert (released.status_code, released.json()) == (200, {"released": 1})

    third = await client.check(CALL)
    assert third.status_code == 200
    assert third.json()["lease"] not in (None, lease)  # a handle of its own


async def test_a_refused_check_holds_no_slot_and_charges_no_rate(make_service: MakeService) -> None:
    client = make_service(CAPPED)
    first = await client.check(CALL)
    for _ in range(3):
        assert (await client.check(CALL)).status_code == 429
    await client.post("/v1/release", {"lease": first.json()["lease"]})
    answer = (await client.check(CALL)).json()
    assert [(limit["name"], limit["remaining"]) for limit in answer["limits"]] == [("api", 98)]


async def test_a_lease_released_twice_releases_once(make_service: MakeService) -> None:
    client = make_service(CAPPED)
    lease = (await client.check(CALL)).json()["lease"]
    assert (await client.post("/v1/release", {"lease": lease})).json() == {"released": 1}
    second = await client.post("/v1/release", {"lease": lease})
    assert (second.status_code, second.json()) == (200, {"released": 0})


async def test_a_forged_or_foreign_handle_is_404_and_releases_nothing(
    make_service: MakeService,
) -> None:
    client = make_service(CAPPED)
    other = make_service(CAPPED, store=client.store)  # another replica, another secret
    held = (await client.check(CALL)).json()["lease"]
    foreign = (await other.check({**CALL, "client_ip": "198.51.100.1"})).json()["lease"]
    tampered = held[:-2] + ("AA" if held[-2:] != "AA" else "BB")
    for token in ("not-a-lease", tampered, foreign):
        response = await client.post("/v1/release", {"lease": token})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "unknown_lease"
    assert (await client.check(CALL)).status_code == 429  # the slot is still held


async def test_replicas_sharing_the_secret_release_each_others_leases(
    make_service: MakeService,
) -> None:
    secret = b"a shared secret of the replicas"
    one = make_service(CAPPED, secret=secret)
    two = make_service(CAPPED, secret=secret, store=one.store)
    lease = (await one.check(CALL)).json()["lease"]
    assert (await two.check(CALL)).status_code == 429
    assert (await two.post("/v1/release", {"lease": lease})).json() == {"released": 1}
    assert (await two.check(CALL)).status_code == 200


async def test_a_lease_never_released_ends_with_its_ttl(make_service: MakeService) -> None:
    clock = Clock(T0)
    client = make_service(CAPPED, store=MemoryStore(clock=clock), clock=clock)
    assert (await client.check(CALL)).status_code == 200
    clock.t = T0 + 59
    assert (await client.check(CALL)).status_code == 429
    clock.t = T0 + 61  # lease_ttl: 1 minute
    assert (await client.check(CALL)).status_code == 200
