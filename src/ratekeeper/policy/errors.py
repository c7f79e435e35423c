"""The one error a policy file can produce, naming where the problem is."""

from __future__ import annotations

__all__ = ["PolicyError"]


class PolicyError(ValueError):
    """A policy that cannot be used, with the file, line and field at fault.

    ``str(error)`` reads ``scanner.yaml:12: plans.free.limits.api: malformed
    rate '60/minit' ...`` so an operator can go straight to the line.
    """

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None, field: str = ""
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "<policy>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
