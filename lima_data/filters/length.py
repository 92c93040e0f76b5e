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


class RawLength(Filter):
    """A cheap early check on the response's raw HTML length, so short answers skip HTML cleaning.

    Cleaning only removes characters (tags, attributes, link targets, entities) or replaces a tag with shorter
    Markdown (``<li>`` -> ``- ``, ``<pre><code>`` -> a fence), so the cleaned response is never longer than its raw
    HTML (checked on every answer of ../shared/data by the tests): an answer whose raw HTML is already below the
    ``length`` filter's minimum can be dropped as ``too_short`` before cleaning. Put it before ``clean`` with the
    same ``min_chars`` as ``length``.

    Value: ``len(raw response)`` (characters). Reason: ``too_short``.
    """

    name = "raw_length"
    reasons = ("too_short",)
    defaults = {"min_chars": 1200}

    def measure(self, candidate: Candidate) -> int:
        return len(candidate.response)

    def decide(self, value: int) -> str | None:
        return "too_short" if value < self.min_chars else None
