"""What ``ratekeeper keys ...`` does besides parsing its options: the CLI stays a thin shell.

The command line opens the registry, loads the policy and calls these; they
turn options into the registry's arguments and records into lines. The raw
key is printed by the CLI alone, once, on stdout (``keys create``); nothing
here prints or logs it.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence
from datetime import datetime

from ._errors import InvalidKeyError
from ._records import KeyRecord

__all__ = ["DEFAULT_REGISTRY", "cli_actor", "key_table", "parse_limits"]

#: the registry ``ratekeeper keys`` and ``serve`` use when not told: a file here
DEFAULT_REGISTRY = "sqlite:///./ratekeeper.sqlite3"


def cli_actor() -> str:
    """Who runs the command, for the audit log: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return "cli"


def parse_limits(options: Sequence[str]) -> dict[str, object]:
    """``--limit api=100/minute --limit slots=5`` as a key's own limits.

    A whole number is a concurrency cap's size; anything else is given to
    the policy as written (a rate, ``unlimited``), which checks it.
    """
    limits: dict[str, object] = {}
    for option in options:
        name, separator, value = option.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or not name or not value:
            raise InvalidKeyError(
                "--limit takes NAME=VALUE (api=100/minute, slots=5, api=unlimited), "
                f"got {option!r}",
                field="limits",
            )
        if name in limits:
            raise InvalidKeyError(f"--limit {name} is given twice", field=f"limits.{name}")
        limits[name] = int(value) if value.isdigit() else value
    return limits


def key_table(records: Iterable[KeyRecord]) -> list[str]:
    """Records as aligned lines under a header: never a key, never a hash."""
    rows = [("ID", "PLAN", "NAME", "USER", "LIMITS", "CREATED", "REVOKED")]
    for record in records:
        limits = ",".join(f"{name}={value}" for name, value in sorted(record.limits.items()))
        rows.append(
            (
                record.id, record.plan, record.name or "-", record.user or "-", limits or "-",
                _when(record.created_at), _when(record.revoked_at),
            )
        )  # fmt: skip
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
