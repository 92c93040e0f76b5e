"""Reddit rules (LIMA section 2.1): r/WritingPrompts pairs and r/AskReddit test prompts."""

from __future__ import annotations

import re

from ..candidate import Candidate
from .base import Filter

_TAG = re.compile(r"^\s*[\[(]\s*([A-Za-z]{1,4})\s*[\])]\s*[:\-]?\s*")


class Nsfw(Filter):
    """Posts marked over 18 are dropped unless the recipe allows them (``allow = true``).

    Value: ``over_18`` (bool). Reason: ``nsfw``.
    """

    name = "nsfw"
    reasons = ("nsfw",)
    defaults = {"allow": False}

    def measure(self, candidate: Candidate) -> bool:
        return bool(candidate.meta.get("over_18"))

    def decide(self, value: bool) -> str | None:
        return "nsfw" if value and not self.allow else None


class PromptTag(Filter):
    """r/WritingPrompts: only posts tagged ``[WP]`` (not ``[EU]``, ``[TT]``, ``[MP]``, ``[IP]``, ...); the tag is
    removed from the prompt (LIMA: "the submission title without its [WP] tag").

    Applies to the groups in ``subreddits`` (lower-cased); others pass with value ``None``. Transforms the prompt.
    Value: the tag found (``"WP"``, ``"EU"``, ..., or ``""`` for none). Reasons: ``untagged``, ``other_tag``.
    """

    name = "prompt_tag"
    reasons = ("untagged", "other_tag")
    defaults = {"subreddits": ["writingprompts"], "keep_tags": ["WP"]}

    def measure(self, candidate: Candidate) -> str | None:
        if candidate.meta.get("group") not in self.subreddits:
            return None
        match = _TAG.match(candidate.prompt)
        if not match:
            return ""
        candidate.prompt = candidate.prompt[match.end():].strip()
        return match.group(1).upper()

    def decide(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value == "":
            return "untagged"
        return None if value in {t.upper() for t in self.keep_tags} else "other_tag"


class TitleOnly(Filter):
    """r/AskReddit test prompts: the title must stand alone, so posts with a body (self text) are dropped;
    ``[deleted]`` / ``[removed]`` bodies count as none. Titles that are removed or deleted are dropped too.

    Applies to the groups in ``subreddits``. Value: the body's length in characters. Reasons: ``has_body``,
    ``removed``.
    """

    name = "title_only"
    reasons = ("has_body", "removed")
    defaults = {"subreddits": ["askreddit"]}

    def measure(self, candidate: Candidate) -> int | None:
        if candidate.meta.get("group") not in self.subreddits:
            return None
        if candidate.prompt.strip() in ("", "[deleted]", "[removed]", "[deleted by user]"):
            return -1
        body = (candidate.meta.get("selftext") or "").strip()
        return 0 if body in ("[deleted]", "[removed]") else len(body)

    def decide(self, value: int | None) -> str | None:
        if value is None or value == 0:
            return None
        return "removed" if value < 0 else "has_body"


class HasResponse(Filter):
    """Groups that become training pairs need a response: the best eligible top-level comment (see the Reddit
    reader for what is eligible). Applies to the groups in ``subreddits``.

    Value: number of eligible comments. Reason: ``no_response``.
    """

    name = "has_response"
    reasons = ("no_response",)
    defaults = {"subreddits": ["writingprompts"]}

    def measure(self, candidate: Candidate) -> int | None:
        if candidate.meta.get("group") not in self.subreddits:
            return None
        return candidate.meta.get("eligible_comments", 0) if candidate.response else 0

    def decide(self, value: int | None) -> str | None:
        return "no_response" if value == 0 else None
