"""The ``answer_score`` filter: the top answer's vote score (LIMA: at least 10)."""

from __future__ import annotations

from ..candidate import Candidate
from .base import Filter


class AnswerScore(Filter):
    """The question's top answer must score at least ``min_score`` (LIMA section 2.1: ">= 10").

    The reader sets ``candidate.score`` to the top answer's score (``None`` when the question has no answer).
    ``score >= min_score`` is kept.

    Value: the top answer's score (int) or ``None``.
    Reasons: ``no_answer`` (the question has no answer), ``answer_score_too_low``.
    """

    name = "answer_score"
    reasons = ("no_answer", "answer_score_too_low")
    defaults = {"min_score": 10}

    def measure(self, candidate: Candidate) -> int | None:
        return candidate.score

    def decide(self, value: int | None) -> str | None:
        if value is None:
            return "no_answer"
        if value < self.min_score:
            return "answer_score_too_low"
        return None
