"""A filter written outside the package (issue 12: a recipe names it by ``module:Class``)."""

from lima_data.candidate import Candidate
from lima_data.filters import Filter


class QuestionMarkPrompt(Filter):
    """Keeps prompts that end with a question mark; measures whether the prompt does."""

    name = "question_mark_prompt"
    reasons = ("no_question_mark",)
    defaults = {"required": True}

    def measure(self, candidate: Candidate) -> bool:
        return candidate.prompt.rstrip().endswith("?")

    def decide(self, value: bool) -> str | None:
        return "no_question_mark" if self.required and not value else None


class NotAFilter:
    name = "nope"
