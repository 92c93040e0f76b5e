"""The records that flow through lima-data (DESIGN.md section 4).

A :class:`Candidate` is one prompt/response pair read from a source, before or after filtering. Kept candidates
that the selection picks become manifest rows (:func:`to_example`), in the chat ``messages`` layout that Hugging
Face and TRL read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import safe_text


@dataclass(slots=True)
class Candidate:
    """One prompt/response pair from a source.

    Attributes:
        id: stable id, ``stackexchange/<site>/<question_id>``, ``stackexchange_dialogue/<site>/<question_id>``,
            ``wikihow/<slug>`` or ``reddit/<subreddit>/<submission_id>``. Unique within a build.
        source: source name, e.g. ``"stackexchange"``.
        domain: site / category / subreddit, e.g. ``"beer.stackexchange.com"``; ``""`` when there is none
            (null in the manifest).
        prompt: the user turn (text; Markdown once cleaned).
        response: the assistant turn (raw HTML as read, Markdown after the ``clean`` filter). Empty when the
            reader did not read it, e.g. a question whose top answer is below the minimum score.
        score: the source's own vote score of the response; ``None`` when there is no response.
        meta: everything else: question score, answer id, url, author, created, tags, licence, which field
            became the prompt, the Stack Exchange group (``stem`` / ``other``), ...
        values: the measured value of every filter the candidate went through, by filter name (filled by the
            pipeline; written with rejects and per-candidate measurements, never to the manifest).
    """

    id: str
    source: str
    domain: str
    prompt: str
    response: str
    score: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # An id or domain made from a file name that is not UTF-8 (lone surrogates) is hashed and written
        # everywhere: its escaped form (``\xff``, see lima_data.errors.path_text) is the one used throughout.
        self.id, self.domain = safe_text(self.id), safe_text(self.domain)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with every field (used for rejects)."""
        return {
            "id": self.id,
            "source": self.source,
            "domain": self.domain,
            "prompt": self.prompt,
            "response": self.response,
            "score": self.score,
            "meta": self.meta,
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "Candidate":
        """Inverse of :meth:`to_dict`. Raises ``KeyError`` when a required field is missing."""
        return cls(
            id=row["id"],
            source=row["source"],
            domain=row["domain"],
            prompt=row["prompt"],
            response=row["response"],
            score=row.get("score"),
            meta=dict(row.get("meta") or {}),
            values=dict(row.get("values") or {}),
        )


def to_example(candidate: Candidate, *, prompt_only: bool = False) -> dict[str, Any]:
    """Turn a selected candidate into a manifest row.

    Returns ``{"id", "source", "domain", "messages": [{"role": "user", "content"}, {"role": "assistant",
    "content"}], "meta"}``. A multi-turn candidate (``meta["messages"]``, authored rows) keeps its whole
    conversation. With ``prompt_only`` (test prompts) the messages stop after the first user turn; a candidate
    without a response has no assistant turn. The response's vote score is kept as ``meta["score"]``. A candidate
    with no domain (``""``) gets ``"domain": None``.
    """
    meta = dict(candidate.meta)
    conversation = meta.pop("messages", None)
    if conversation is None:
        messages = [{"role": "user", "content": candidate.prompt}]
        if candidate.response:
            messages.append({"role": "assistant", "content": candidate.response})
    else:
        messages = [dict(m) for m in conversation]
    if prompt_only:
        first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
        messages = messages[: first_user + 1]
    meta["score"] = candidate.score
    return {
        "id": candidate.id,
        "source": candidate.source,
        "domain": candidate.domain or None,
        "messages": messages,
        "meta": meta,
    }
