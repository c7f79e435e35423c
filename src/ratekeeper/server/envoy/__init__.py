"""Envoy's global rate limit service: ``envoy.service.ratelimit.v3`` (docs/envoy.md).

``ratekeeper serve --grpc-port N`` answers Envoy's (and Istio's, and every
Envoy-based gateway's) ``ShouldRateLimit`` with the service's policy and
engine. Modules, each with one job:

``_mapping``  descriptors -> (category, caller) items, by the policy's ``envoy:`` section
``_answers``  a decision -> ``RateLimitResponse`` (statuses, headers, body)
``_grpc``     the servicer, gRPC health, the threaded gRPC server, how a call reaches its decision
``_json``     ``POST /json``: the same call over HTTP in protobuf's JSON mapping, as the reference

Needs the ``envoy`` extra (grpcio, xds-protos, grpcio-health-checking).

Importing this package turns gRPC core's ``event_engine_listener``
experiment off (``GRPC_EXPERIMENTS``, added to what is set there) unless
``grpc`` was imported first, when gRPC has read it already: with it on, the
accepted connections' reads and writes run on EventEngine's threads and
each call crosses to the server's polling thread; off, the polling thread
does them itself (gRPC's listener before the experiment). A server that
answers a fixed message spends 75 us of CPU per call instead of 99-106,
``ratekeeper serve`` with the memory store 119 instead of 151 (docs/envoy.md).
"""

import os


def _listen_on_the_polling_thread() -> None:
    experiments = os.environ.get("GRPC_EXPERIMENTS", "")
    if "event_engine_listener" not in experiments:
        os.environ["GRPC_EXPERIMENTS"] = ",".join(
            filter(None, (experiments, "-event_engine_listener"))
        )


_listen_on_the_polling_thread()  # before gRPC is imported

from ._grpc import RATE_LIMIT_SERVICE, GrpcServer, RateLimitServicer, start_grpc  # noqa: E402
from ._json import json_route  # noqa: E402
from ._mapping import DescriptorMap  # noqa: E402

__all__ = [
    "RATE_LIMIT_SERVICE",
    "DescriptorMap",
    "GrpcServer",
    "RateLimitServicer",
    "json_route",
    "start_grpc",
]
