"""What the registry hands out: plain frozen records, never a key or its hash."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AuditEvent", "KeyRecord"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An API key of the registry, as an operator sees it.

    ``limits`` are the key's own limits as they were given (``{"api":
    "100/minute", "slots": 5}``), ``{}`` when its plan's apply. The raw key is
    shown once, by ``create_key``; its SHA-256 stays inside the registry.
    """

    id: str
    name: str
    plan: str
    user: str | None
    limits: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_json(self) -> dict[str, Any]:
        """The record as JSON data (times in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "name": self.name,
            "plan": self.plan,
            "user": self.user,
            "limits": dict(self.limits),
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One row of the audit log: ``actor`` did ``kind`` to ``target`` at ``at``."""

    id: int
    at: datetime
    actor: str
    kind: str
    target: str | None
    detail: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": _iso(self.at),
            "actor": self.actor,
            "kind": self.kind,
            "target": self.target,
            "detail": dict(self.detail),
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
