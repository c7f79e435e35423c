"""Charts as SVG written on the server: no JavaScript library, nothing from elsewhere.

Each chart is a ``<figure>`` holding an ``<svg>`` (its ``<title>`` and
``<desc>`` name what it shows and sum it up for a screen reader) and its
numbers: ``data-*`` attributes on every series and bar (``data-total``,
``data-values``, ``data-value``) and a table in a ``<details>`` beside it,
so a test reads what the chart draws and a reader who cannot see the
lines reads the same numbers. Colours come from the stylesheet's classes
(``series-allowed``, ...) and every series also differs by its dash, so
colour is never the only difference.

Pure functions: numbers in, :class:`~._html.Markup` out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ._html import Markup, fill, join

__all__ = ["Series", "bar", "line_chart", "nice_ceiling", "usage_chart"]

WIDTH, HEIGHT = 1000, 240
_NOTHING = Markup("")
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 30


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: its name (a CSS class and ``data-series``), label and values."""

    name: str
    label: str
    values: Sequence[int]


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)  # pragma: no cover (10 * power >= value always)


def _x(index: int, count: int) -> float:
    inner = WIDTH - LEFT - RIGHT
    return LEFT + (inner * index / (count - 1) if count > 1 else inner / 2)


def _y(value: float, top: int) -> float:
    inner = HEIGHT - TOP - BOTTOM
    return TOP + inner - inner * value / top


def _grid(top: int, axis: str) -> list[Markup]:
    """Four horizontal lines with their values, on the left."""
    parts = []
    for step in range(5):
        value = top * step / 4
        y = round(_y(value, top), 1)
        label = f"{value:g}"
        parts.append(
            fill(
                '<line class="grid" x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>'
                '<text class="tick" x="{tx}" y="{ty}" text-anchor="end">{label}</text>',
                x1=LEFT, x2=WIDTH - RIGHT, y=y, tx=LEFT - 6, ty=y + 4, label=label,
            )
        )  # fmt: skip
    parts.append(
        fill(
            '<text class="tick unit" x="{x}" y="{y}" text-anchor="start">{unit}</text>',
            x=LEFT - 40, y=14, unit=axis,
        )
    )  # fmt: skip
    return parts


def _x_ticks(labels: Sequence[str], every: int) -> list[Markup]:
    count = len(labels)
    return [
        fill(
            '<text class="tick" x="{x}" y="{y}" text-anchor="middle">{label}</text>',
            x=round(_x(index, count), 1), y=HEIGHT - 8, label=labels[index],
        )
        for index in range(0, count, max(every, 1))
    ]  # fmt: skip


def _figure(
    chart_id: str,
    title: str,
    summary: str,
    drawing: list[Markup],
    legend: Markup,
    table: Markup,
    attributes: Markup = _NOTHING,
) -> Markup:
    return fill(
        '<figure class="chart" id="{id}" data-chart="{id}"{attributes}>'
        '<svg class="chart-svg" viewBox="0 0 {w} {h}" role="img" '
        'aria-labelledby="{id}-title {id}-desc">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{summary}</desc>'
        "{drawing}</svg>"
        "<figcaption>{legend}</figcaption>"
        "<details><summary>Numbers of this chart</summary>{table}</details></figure>",
        id=chart_id, attributes=attributes, w=WIDTH, h=HEIGHT, title=title, summary=summary,
        drawing=join(drawing), legend=legend, table=table,
    )  # fmt: skip


def _legend(items: Sequence[tuple[str, str]]) -> Markup:
    return join(
        fill('<span class="key key-{name}">{label}</span>', name=name, label=label)
        for name, label in items
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Markup:
    head = join(fill('<th scope="col">{h}</th>', h=header) for header in headers)
    body = join(
        Markup("<tr>") + join(fill("<td>{v}</td>", v=value) for value in row) + Markup("</tr>")
        for row in rows
    )
    if not rows:
        body = fill('<tr><td colspan="{n}">No numbers yet.</td></tr>', n=len(headers))
    return fill(
        '<table class="numbers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>',
        head=head, body=body,
    )  # fmt: skip


def line_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str,
    tick_every: int,
    rows_shown: Callable[[int], bool] = lambda index: True,
) -> Markup:
    """Lines over ``labels`` (one per point), each series with its numbers.

    ``rows_shown(index)`` picks the points listed in the table (all by
    default; the rate chart lists only seconds that had requests).
    """
    count = len(labels)
    top = nice_ceiling(max((max(line.values, default=0) for line in series), default=0))
    drawing = _grid(top, f"requests per {unit}") + _x_ticks(labels, tick_every)
    for line in series:
        points = " ".join(
            f"{_x(index, count):.1f},{_y(value, top):.1f}"
            for index, value in enumerate(line.values)
        )
        drawing.append(
            fill(
                '<polyline class="series series-{name}" data-series="{name}" data-total="{total}" '
                'data-max="{most}" data-values="{values}" points="{points}"/>',
                name=line.name, total=sum(line.values), most=max(line.values, default=0),
                values=",".join(str(value) for value in line.values), points=points,
            )
        )  # fmt: skip
    summary = "; ".join(
        f"{line.label}: {sum(line.values)} in all, at most {max(line.values, default=0)} per {unit}"
        for line in series
    )
    rows = [
        [labels[index], *(line.values[index] for line in series)]
        for index in range(count)
        if rows_shown(index)
    ]
    table = _table([unit.capitalize(), *(line.label for line in series)], rows)
    legend = _legend([(line.name, line.label) for line in series])
    return _figure(chart_id, title, summary, drawing, legend, table)


def usage_chart(
    *,
    chart_id: str,
    title: str,
    labels: Sequence[str],
    used: Sequence[int],
    refused: Sequence[int],
    limit: int | None,
    unit: str,
    tick_every: int,
) -> Markup:
    """Columns of what a key used in each period, and the line of what it may use.

    ``limit`` is the most the key may use in one period (``None``: no rate
    limits it): drawn as a dashed line, and in ``data-limit``.
    """
    count = len(labels)
    top = nice_ceiling(max(max(used, default=0), limit or 0))
    drawing = _grid(top, f"used per {unit}") + _x_ticks(labels, tick_every)
    inner = WIDTH - LEFT - RIGHT
    slot = inner / max(count, 1)
    for index, value in enumerate(used):
        height = _y(0, top) - _y(value, top)
        drawing.append(
            fill(
                '<rect class="bar series-used" data-label="{label}" data-value="{value}" '
                'x="{x}" y="{y}" width="{w}" height="{h}"/>',
                label=labels[index], value=value, x=round(LEFT + slot * index + slot * 0.15, 1),
                y=round(_y(value, top), 1), w=round(slot * 0.7, 1), h=round(height, 1),
            )
        )  # fmt: skip
    if limit is not None:
        y = round(_y(limit, top), 1)
        drawing.append(
            fill(
                '<line class="series series-limit" data-series="limit" data-value="{limit}" '
                'x1="{x1}" x2="{x2}" y1="{y}" y2="{y}"/>',
                limit=limit, x1=LEFT, x2=WIDTH - RIGHT, y=y,
            )
        )  # fmt: skip
    limit_text = "no rate limit" if limit is None else f"a limit of {limit} per {unit}"
    summary = f"Used {sum(used)} in all, at most {max(used, default=0)} per {unit}, {limit_text}"
    if sum(refused):
        summary += f"; {sum(refused)} refused"
    rows = [
        [labels[index], used[index], refused[index], "-" if limit is None else limit]
        for index in range(count)
        if used[index] or refused[index]
    ]
    table = _table([unit.capitalize(), "Used", "Refused", "Limit"], rows)
    legend_items = [("used", "Used")] + ([] if limit is None else [("limit", "Limit")])
    attributes = fill(
        ' data-used="{used}" data-refused="{refused}" data-limit="{limit}"',
        used=sum(used), refused=sum(refused), limit="" if limit is None else limit,
    )  # fmt: skip
    return _figure(chart_id, title, summary, drawing, _legend(legend_items), table, attributes)


def bar(value: int, top: int, name: str) -> Markup:
    """A small horizontal bar for a table cell: ``value`` of ``top``, its number beside it."""
    share = 0.0 if top <= 0 else min(max(value / top, 0.0), 1.0)
    return fill(
        '<svg class="cell-bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">'
        '<rect class="track" x="0" y="0" width="100" height="10"/>'
        '<rect class="bar series-{name}" data-value="{value}" x="0" y="0" width="{w}" height="10"/>'
        "</svg>",
        name=name, value=value, w=round(share * 100, 2),
    )  # fmt: skip
