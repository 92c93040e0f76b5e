"""wikiHow titles that are no how-to article (ours; LIMA section 2.1 uses "the title as the prompt ("How to cook an
omelet?")", and every wikiHow prompt of its release reads "How to ...?")."""

from __future__ import annotations

from ..candidate import Candidate
from .base import Filter


class TitleNotHowto(Filter):
    """Drop wikiHow articles whose title is no how-to, so no prompt reads "How to 19 powerful prayers ...?".

    The wikiHow reader classifies each title and records the form in ``meta["title_form"]`` (rules in
    ``lima_data.sources.wikihow.parse_title``): ``how_to`` ("How to Thin Your Blood: Can Natural Remedies
    Help?"), ``ways_to`` ("3 Easy Ways to Break Down Clay Soil Fast"), ``task`` (a bare page name, "Grill Flank
    Steak"), ``question`` ("Why Do You Get Sleepy Around Someone You Love? 8 Reasons") and ``listicle`` (a
    numbered list or a noun phrase with an SEO subtitle: "19 Powerful Prayers for a Financial Miracle from God",
    "Angel Number 333: Meaning in Love, Spirituality, & More"). The first three become "How to <task>?"; a
    question stays a question.

    Setting: ``forms``, the forms kept (default ``["how_to", "ways_to", "task"]``: LIMA's release has "How to"
    prompts only; add ``"question"`` to keep question titles as question prompts). A candidate without
    ``meta["title_form"]`` (another source) is kept.

    Value: the title form (or ``None``). Reason: ``title_not_howto``.
    """

    name = "title_not_howto"
    reasons = ("title_not_howto",)
    defaults = {"forms": ["how_to", "ways_to", "task"]}

    def measure(self, candidate: Candidate) -> str | None:
        return candidate.meta.get("title_form")

    def decide(self, value: str | None) -> str | None:
        if value is None or value in self.forms:
            return None
        return "title_not_howto"
