"""Rate limiting inside web apps: ASGI and WSGI middleware, per-route limits.

Import the module you need; nothing here imports a web framework::

    from ratekeeper.integrations.asgi import RateLimitMiddleware   # FastAPI, Starlette, any ASGI
    from ratekeeper.integrations.wsgi import RateLimitMiddleware   # Flask, Django, any WSGI
    from ratekeeper import limit                                   # per-route limits

See docs/middleware.md.
"""

from __future__ import annotations

__all__: list[str] = []
