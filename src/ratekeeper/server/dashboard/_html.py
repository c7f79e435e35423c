"""HTML written safely by construction: every value is escaped unless it is :class:`Markup`.

The pages are Python templates (``str.format`` fields), not a template
engine: :func:`fill` escapes each value it is given (a key's name, a plan, an
audit detail: anything that came from outside) and passes :class:`Markup`,
HTML this package wrote, as it is. So a key named ``<script>`` is text on
the page, never markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime

__all__ = ["Markup", "esc", "fill", "join", "when"]


class Markup(str):
    """HTML that is safe as it is: written by this package, its values escaped already."""

    __slots__ = ()

    def __add__(self, other: str) -> Markup:
        """Markup after markup stays markup; text after it is escaped first."""
        return Markup(str.__add__(self, esc(other)))


def esc(value: object) -> Markup:
    """``value`` as HTML text (quotes escaped too, so it fits in an attribute)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def fill(template: str, /, **fields: object) -> Markup:
    """``template`` with its ``{name}`` fields replaced by their escaped values."""
    return Markup(template.format(**{name: esc(value) for name, value in fields.items()}))


def join(parts: Iterable[Markup], separator: str = "") -> Markup:
    """Markup pieces, one after the other."""
    return Markup(separator.join(esc(part) for part in parts))


def when(moment: datetime | float | None) -> str:
    """A moment as the dashboard shows it: UTC, to the second (``2026-12-07 10:04:05``)."""
    if moment is None:
        return "-"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:  # SQLite hands back naive datetimes: they are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
