"""``python -m ratekeeper ...``: the same command as ``ratekeeper ...``."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    main(prog_name="ratekeeper")
