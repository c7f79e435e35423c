"""What the registry refuses, by kind: the admin API maps each to its status."""

from __future__ import annotations

__all__ = ["InvalidKeyError", "KeyConflictError", "KeyNotFoundError", "RegistryError"]


class RegistryError(Exception):
    """A registry operation that was refused; nothing was written."""


class InvalidKeyError(RegistryError, ValueError):
    """Bad input: a plan the policy lacks, limits it refuses, an id that is not a name.

    ``field`` names what was wrong (``plan``, ``limits.api``, ``id``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class KeyNotFoundError(RegistryError, LookupError):
    """No key with that id in the registry."""


class KeyConflictError(RegistryError):
    """The change conflicts with what is there: an id or key taken, a key already revoked."""
