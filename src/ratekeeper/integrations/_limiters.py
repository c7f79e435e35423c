"""The middleware's limiter, from ``policy=``/``store=`` or an existing ``limiter=``.

Both middleware accept either spelling so that one policy file, or one limiter
already shared with other code, drives everything. A limiter of the other face
(a ``Limiter`` handed to the ASGI middleware) is rebuilt as its twin on the same
policy and store: the counters are the store's, so both see the same state, and
the keys pushed to the given limiter (``use_keys``, e.g. a registry's) reach the
twin too (``share_keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from ..engine import BlockHook, DecisionHook, LimiterCore
from ..limiter import AsyncLimiter, Limiter
from ..policy import Policy
from ..stores.base import Store

__all__ = ["async_limiter", "sync_limiter"]

PolicyLike = Policy | str | Path
AnyLimiter = Limiter | AsyncLimiter
_Face = TypeVar("_Face", Limiter, AsyncLimiter)


def _core(
    policy: PolicyLike | None, store: Store | None, limiter: AnyLimiter | None
) -> LimiterCore | None:
    if limiter is None:
        if policy is None:
            raise TypeError("RateLimitMiddleware needs policy= (a path or a Policy) or limiter=")
        return None
    if policy is not None or store is not None:
        raise TypeError("pass either limiter= or policy=/store=, not both")
    if not isinstance(limiter, LimiterCore):
        raise TypeError(f"limiter must be a Limiter or AsyncLimiter, got {type(limiter).__name__}")
    return limiter


def _face(
    face: type[_Face],
    policy: PolicyLike | None,
    store: Store | None,
    limiter: AnyLimiter | None,
    hooks: Sequence[DecisionHook] = (),
    block_hooks: Sequence[BlockHook] = (),
) -> _Face:
    core = _core(policy, store, limiter)
    if core is None:
        assert policy is not None
        return face(policy, store, hooks=hooks, block_hooks=block_hooks)
    if isinstance(core, face) and not hooks and not block_hooks:
        return core
    # a twin on the same policy and store, told what the given limiter was told and more
    hooks = ((core.hook,) if core.hook is not None else ()) + tuple(hooks)
    block_hooks = ((core.block_hook,) if core.block_hook is not None else ()) + tuple(block_hooks)
    twin = face(
        core.policy, core.store, remember_refusals=core._remember, hooks=hooks,
        block_hooks=block_hooks,
    )  # fmt: skip
    core.share_keys(twin)  # keys pushed to the given limiter later (use_keys) reach it too
    return twin


def async_limiter(
    policy: PolicyLike | None,
    store: Store | None,
    limiter: AnyLimiter | None,
    hooks: Sequence[DecisionHook] = (),
    block_hooks: Sequence[BlockHook] = (),
) -> AsyncLimiter:
    """The :class:`AsyncLimiter` an ASGI middleware decides with, told of ``hooks``."""
    return _face(AsyncLimiter, policy, store, limiter, hooks, block_hooks)


def sync_limiter(
    policy: PolicyLike | None,
    store: Store | None,
    limiter: AnyLimiter | None,
    hooks: Sequence[DecisionHook] = (),
    block_hooks: Sequence[BlockHook] = (),
) -> Limiter:
    """The :class:`Limiter` a WSGI middleware decides with, told of ``hooks``."""
    return _face(Limiter, policy, store, limiter, hooks, block_hooks)
