"""Length filter on the cleaned response."""

from __future__ import annotations

from ..candidate import Candidate
from .base import Filter


class Length(Filter):
    """Response length in characters of the cleaned (Markdown) response.

    LIMA section 2.1: answers shorter than 1,200 or longer than 4,096 characters are dropped. Both bounds are
    inclusive on the kept side: ``min_chars <= len(response) <= max_chars`` is kept. Run it after ``clean`` so
    the length is that of the text the model will see.

    With ``band_min_chars`` / ``band_max_chars`` set (the ``lima-release`` preset: 1,200 / 4,096 inside wider
    bounds of 190 / 6,800), a kept candidate also gets ``meta["length_band"]``: ``"short"`` below the band,
    ``"long"`` above it, else ``"core"``; the selection's ``band_shares`` then caps each band's share of a quota
    (LIMA's release: 11% of its Stack Exchange answers are shorter than 1,200 characters, 1% longer than 4,096).

    Value: ``len(candidate.response)`` (int, characters).
    Reasons: ``too_short``, ``too_long``.
    """

    name = "length"
    reasons = ("too_short", "too_long")
    defaults = {"min_chars": 1200, "max_chars": 4096, "band_min_chars": None, "band_max_chars": None}

    def measure(self, candidate: Candidate) -> int:
        chars = len(candidate.response)
        if self.band_min_chars is not None or self.band_max_chars is not None:
            if self.band_min_chars is not None and chars < self.band_min_chars:
                candidate.meta["length_band"] = "short"
            elif self.band_max_chars is not None and chars > self.band_max_chars:
                candidate.meta["length_band"] = "long"
            else:
                candidate.meta["length_band"] = "core"
        return chars

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
