"""``ratekeeper serve --grpc-port``: Envoy's rate limit service beside the HTTP API."""

from __future__ import annotations

import time

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rls_support import descriptor, request

from support.loopback import LoopbackProcess

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT


def test_serve_answers_envoy_and_grpc_health_on_its_grpc_port(served: LoopbackProcess) -> None:
    with grpc.insecure_channel(served.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        for attempt in range(2):  # the minute's fixed window must not end between the calls
            minute = time.time() // 60
            ping = descriptor(
                ("generic_key", "heartbeat"), ("api_key", "demo-key"), ("node", f"n{attempt}")
            )
            codes = [stub.ShouldRateLimit(request("flowtriq", ping)).overall_code for _ in range(6)]
            if time.time() // 60 == minute:
                break

    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert codes == [OK] * 5 + [OVER]
    assert "envoy RLS      grpc 127.0.0.1:" in served.log_tail(40)


def test_serve_stops_gracefully_with_grpc_on(served: LoopbackProcess) -> None:
    process = served._process
    assert process is not None
    served.stop()
    assert process.returncode == 0
