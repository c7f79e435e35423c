"""What goes on the wire: rate limit header fields and JSON error bodies."""

from __future__ import annotations

from .headers import HeaderWriter

__all__ = ["HeaderWriter"]
