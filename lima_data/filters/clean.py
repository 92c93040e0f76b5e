"""The ``clean`` filter: HTML -> Markdown of responses (the conversion itself is
:mod:`lima_data.text.markup`, shared with the sources)."""

from __future__ import annotations

from ..candidate import Candidate
from ..text.markup import html_to_markdown, unescape_entities
from .base import Filter


class Clean(Filter):
    """HTML -> Markdown for the response (LIMA section 2.1: "remove links, images and other HTML tags, retaining
    only code blocks and lists"). The question body is cleaned the same way by ``prompt_choice``, only when the
    coin picks it.

    Transforms ``candidate.response`` in place (and removes ``meta["response_format"]``: it is Markdown now).
    ``prune_links`` (default on) also removes URLs, link-only paragraphs and what only pointed at a removed link
    (the rules of :func:`html_to_markdown`); ``unescape_entities`` (default on) decodes entities that were escaped
    twice in the post and so survive the HTML parse (``&quot;``; :func:`unescape_entities`), which ``quality``
    would otherwise drop as leftover markup (LIMA's release keeps ``&quot;`` in 12% of its answers).

    Value: what the cleaning changed in the response, ``{"links", "images", "code_blocks", "lists"}`` (counts;
    with ``prune_links`` also ``link_paragraphs``, ``urls``, ``pointer_sentences``; with ``unescape_entities``
    ``entities``), and ``chars``, the cleaned response's length in characters.
    Reasons: ``empty_response`` (nothing left after cleaning).
    """

    name = "clean"
    reasons = ("empty_response",)
    defaults = {"prune_links": True, "unescape_entities": True}

    def measure(self, candidate: Candidate) -> dict[str, int]:
        candidate.response, changes = html_to_markdown(candidate.response, prune_links=self.prune_links)
        if self.unescape_entities:
            candidate.response, changes["entities"] = unescape_entities(candidate.response)
        candidate.meta.pop("response_format", None)
        return {**changes, "chars": len(candidate.response)}

    def decide(self, value: dict[str, int]) -> str | None:
        return "empty_response" if value["chars"] == 0 else None
