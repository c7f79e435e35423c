"""What goes on the wire: a decision's answer (header fields, body) and its merge with the app's.

One module, :mod:`ratekeeper.http.answers`; the engine imports none of it.
"""

from __future__ import annotations

from .answers import PolicyAnswers, decision_headers, merge, merge_raw, retry_after_seconds

__all__ = ["PolicyAnswers", "decision_headers", "merge", "merge_raw", "retry_after_seconds"]
