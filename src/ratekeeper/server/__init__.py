"""The decision service: ``ratekeeper serve`` (docs/service.md).

A Starlette app around the engine's :class:`~ratekeeper.AsyncLimiter`:
``POST /v1/check`` (+ ``:batch``, ``/v1/release``, ``/v1/report``) decides
requests for any API in any language, ``GET /v1/authorize`` answers proxies'
forward-auth, ``/admin`` manages API keys, ``/healthz``, ``/metrics`` and
``/openapi.json`` serve operators.

Modules, each with one job:

``settings``   options, environment and secret files; the built-in policy's path
``service``    the running state every route shares: policy, limiter, store, registry, seal
``decisions``  the decision API's JSON, read strictly and written plainly
``metrics``    Prometheus: the decision hook's adapter, the store's state
``openapi``    ``/openapi.json``
``app``        the Starlette app: routes, check token, JSON errors
``_asgi``      the hot paths' body reader and answer writer on raw ASGI calls
``run``        running it under uvicorn: SIGHUP reloads, graceful shutdown, ``--smoke``

Needs the ``server`` extra (Starlette, uvicorn, prometheus-client): nothing
here is imported by ``import ratekeeper``.
"""
