"""HTML -> Markdown cleaning of responses and question bodies."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from markdownify import MarkdownConverter

from ..candidate import Candidate
from .base import Filter

_BLANK_RUNS = re.compile(r"\n{3,}")
#: Opening tags counted in the raw HTML (a regex count is exact for the well-formed HTML of the dumps, and far
#: cheaper than searching the parsed tree).
_COUNTED = {
    "links": re.compile(r"<a\b", re.I),
    "images": re.compile(r"<img\b", re.I),
    "code_blocks": re.compile(r"<pre\b", re.I),
    "lists": re.compile(r"<[ou]l\b", re.I),
}
_TRAILING = re.compile(r"[ \t]+$", re.M)


def _code_language(pre) -> str:
    """Language of a Stack Exchange ``<pre class="lang-py prettyprint-override">`` block, or ``""``."""
    for cls in pre.get("class") or ():
        if cls.startswith("lang-") and cls != "lang-none":
            return cls[5:]
    return ""


class _Converter(MarkdownConverter):
    """markdownify with the settings LIMA's cleaning needs: fenced code, ``-`` bullets, ATX headings, no
    Markdown escaping of ``*`` and ``_`` in prose, link text kept without the link, images dropped."""

    def __init__(self):
        super().__init__(
            heading_style="ATX",
            bullets="-",
            strip=["a", "img"],
            escape_asterisks=False,
            escape_underscores=False,
            escape_misc=False,
            code_language_callback=_code_language,
        )


_CONVERTER = _Converter()


def html_to_markdown(html: str) -> tuple[str, dict[str, int]]:
    """Convert a post's HTML to Markdown and count what was removed or kept.

    Code blocks (``<pre>``) become fenced blocks (with the ``lang-*`` class as info string), lists stay lists,
    links are replaced by their text, images and every other tag are dropped, entities are decoded. Runs of blank
    lines are collapsed and trailing spaces removed.

    Returns:
        ``(markdown, changes)`` where ``changes`` counts ``links`` and ``images`` removed and ``code_blocks`` and
        ``lists`` kept.
    """
    if not html:
        return "", {"links": 0, "images": 0, "code_blocks": 0, "lists": 0}
    changes = {name: len(pattern.findall(html)) for name, pattern in _COUNTED.items()}
    markdown = _CONVERTER.convert_soup(BeautifulSoup(html, "lxml"))
    markdown = _BLANK_RUNS.sub("\n\n", _TRAILING.sub("", markdown)).strip()
    return markdown, changes


class Clean(Filter):
    """HTML -> Markdown for the response (LIMA section 2.1: "remove links, images and other HTML tags, retaining
    only code blocks and lists"). The question body is cleaned the same way by ``prompt_choice``, only when the
    coin picks it.

    Transforms ``candidate.response`` in place (and removes ``meta["response_format"]``: it is Markdown now).

    Value: what the cleaning changed in the response, ``{"links", "images", "code_blocks", "lists"}`` (counts),
    and ``chars``, the cleaned response's length in characters.
    Reasons: ``empty_response`` (nothing left after cleaning).
    """

    name = "clean"
    reasons = ("empty_response",)
    defaults = {}

    def measure(self, candidate: Candidate) -> dict[str, int]:
        candidate.response, changes = html_to_markdown(candidate.response)
        candidate.meta.pop("response_format", None)
        return {**changes, "chars": len(candidate.response)}

    def decide(self, value: dict[str, int]) -> str | None:
        return "empty_response" if value["chars"] == 0 else None
