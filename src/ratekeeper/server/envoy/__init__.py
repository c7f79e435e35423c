"""Envoy's global rate limit service: ``envoy.service.ratelimit.v3`` (docs/envoy.md).

``ratekeeper serve --grpc-port N`` answers Envoy's (and Istio's, and every
Envoy-based gateway's) ``ShouldRateLimit`` with the service's policy and
engine. Modules, each with one job:

``_mapping``  descriptors -> (category, caller) items, by the policy's ``envoy:`` section
``_answers``  a decision -> ``RateLimitResponse`` (statuses, headers, body)
``_grpc``     the servicer, gRPC health, the threaded gRPC server, how a call reaches its decision

Needs the ``envoy`` extra (grpcio, xds-protos, grpcio-health-checking).
"""

from ._grpc import RATE_LIMIT_SERVICE, GrpcServer, RateLimitServicer, start_grpc
from ._mapping import DescriptorMap

__all__ = ["RATE_LIMIT_SERVICE", "DescriptorMap", "GrpcServer", "RateLimitServicer", "start_grpc"]
