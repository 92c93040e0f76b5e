"""Length filter on the cleaned response."""

from __future__ import annotations

from ..candidate import Candidate
from .base import Filter


class Length(Filter):
    """Response length in characters of the cleaned (Markdown) response.

    LIMA section 2.1: answers shorter than 1,200 or longer than 4,096 characters are dropped. Both bounds are
    inclusive on the kept side: ``min_chars <= len(response) <= max_chars`` is kept. Run it after ``clean`` so
    the length is that of the text the model will see.

    Value: ``len(candidate.response)`` (int, characters).
    Reasons: ``too_short``, ``too_long``.
    """

    name = "length"
    reasons = ("too_short", "too_long")
    defaults = {"min_chars": 1200, "max_chars": 4096}

    def measure(self, candidate: Candidate) -> int:
        return len(candidate.response)

    def decide(self, value: int) -> str | None:
        if value < self.min_chars:
            return "too_short"
        if value > self.max_chars:
            return "too_long"
        return None
