"""FastAPI's side of :func:`ratekeeper.limit`: the dependency, and endpoint signatures.

Imported only when FastAPI asks for a dependency or a FastAPI app decorates
an endpoint; it is the one module of ratekeeper that imports FastAPI.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from .routes import RouteLimit

__all__ = ["dependency", "signature_with_request"]


def _scope_of(request: Request) -> str:
    """The endpoint a request is routed to: its counters are that endpoint's."""
    endpoint = request.scope.get("endpoint")
    if endpoint is not None:
        return f"{endpoint.__module__}.{endpoint.__qualname__}"
    return request.url.path


def dependency(route_limit: RouteLimit) -> Callable[..., Any]:
    """The async dependency FastAPI calls for ``Depends(route_limit)``."""

    async def rate_limit(request: Request, response: Response) -> None:
        decision = await route_limit.hit_async(_scope_of(request), request)
        headers = route_limit.headers(decision)
        if not decision.allowed:
            from .routes import _detail

            raise HTTPException(429, detail=_detail(decision)["detail"], headers=headers)
        response.headers.update(headers)

    return rate_limit


def signature_with_request(
    view: Callable[..., Any], request_name: str, response_name: str
) -> tuple[inspect.Signature, str, str]:
    """``view``'s signature with a request and a response parameter, and their names.

    FastAPI passes an endpoint only what its signature names, and at most one
    request and one response parameter: a view that declares its own keeps
    them (the decorator reads them without taking them away); otherwise
    keyword-only ``request_name``/``response_name`` are added, for the
    decorator alone.
    """
    try:
        signature = inspect.signature(view, eval_str=True)
    except NameError:  # annotations only a type checker can resolve
        signature = inspect.signature(view)
    params = list(signature.parameters.values())
    for param in params:
        annotation = param.annotation
        if isinstance(annotation, type):
            if issubclass(annotation, Request):
                request_name = param.name
            elif issubclass(annotation, Response):
                response_name = param.name
    names = {param.name for param in params}
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        for name, annotation in ((request_name, Request), (response_name, Response))
        if name not in names
    ]
    var_keyword = [p for p in params if p.kind is p.VAR_KEYWORD]
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]
    return (
        signature.replace(parameters=[*params, *extra, *var_keyword]),
        request_name,
        response_name,
    )
