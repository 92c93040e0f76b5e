"""Natural Instructions task rules (LIMA section 2.1: "natural language generation tasks such as summarization,
paraphrasing, and style transfer")."""

from __future__ import annotations

from ..candidate import Candidate
from .base import REQUIRED, Filter


class TaskCategory(Filter):
    """Keep tasks with at least one category in ``categories`` (the generation categories; recipe data).

    Value: the task's categories (list). Reason: ``not_generation``.
    """

    name = "task_category"
    reasons = ("not_generation",)
    defaults = {"categories": REQUIRED}

    def measure(self, candidate: Candidate) -> list[str]:
        return list(candidate.meta.get("categories") or [])

    def decide(self, value: list[str]) -> str | None:
        wanted = {c.lower() for c in self.categories}
        return None if any(c.lower() in wanted for c in value) else "not_generation"


class TaskLanguage(Filter):
    """Keep tasks whose input and output languages are all in ``languages`` (default English).

    Value: ``"<input languages> -> <output languages>"``. Reason: ``not_english`` (any language outside the list).
    """

    name = "task_language"
    reasons = ("not_english",)
    defaults = {"languages": ["English"]}

    def measure(self, candidate: Candidate) -> str:
        inputs = candidate.meta.get("input_language") or []
        outputs = candidate.meta.get("output_language") or []
        return f"{'+'.join(inputs) or '?'} -> {'+'.join(outputs) or '?'}"

    def decide(self, value: str) -> str | None:
        allowed = set(self.languages)
        langs = [x for side in value.split(" -> ") for x in side.split("+")]
        return None if all(x in allowed for x in langs) else "not_english"
