"""Filters of multi-turn dialogues (Stack Exchange comment chains, LIMA section 6).

A dialogue candidate carries its raw turns in ``meta["turns"]`` (see :mod:`lima_data.sources.stackexchange.dialogue`);
``dialogue_clean`` turns them into ``meta["messages"]`` and sets ``response`` to the assistant turns joined, so the
single-turn style rules (``first_person``, ``site_reference``, ``quality``, ``language``) run unchanged on
everything the assistant says. ``turn_count`` and ``turn_length`` bound the conversation's shape.
"""

from __future__ import annotations

import html
import re

from ..candidate import Candidate
from ..text.markup import html_to_markdown
from .base import Filter

#: ``@name`` mentions of Stack Exchange comments: a name is letters, digits, ``.``, ``_`` or ``-`` (the site
#: matches a mention on the display name without spaces). An e-mail address (``a@b.org``) is not a mention.
_MENTION = re.compile(r"(?<![\w.@])@[\w.\-]*\w[,:;]?")
#: A possessive mention (``@Dan's answer``) names a third person's post: it reads as "their answer".
_POSSESSIVE = re.compile(r"(?<![\w.@])@[\w.\-]*\w['\u2019]s\b")
#: The text Stack Exchange writes when a comment thread is moved to chat (in the user's name).
_CHAT_MOVED = re.compile(r"\blet us continue this discussion in chat\b[.!]?", re.I)
#: Comment Markdown links ``[text](url)``: the text is kept, as ``clean`` keeps a link's text. The pattern they
#: follow is ``\[([^\]\n]+)\]\((?:https?|ftp)://[^)\s]+(?:\s+"[^"]*")?\)``, found by :func:`_links_to_text`
#: (linear; the regular expression was quadratic on a line of ``[``, issue 15) with these pieces:
_LINK_TEXT_END = re.compile(r"[\]\n]")
_LINK_URL_START = re.compile(r"\]\((?:https?|ftp)://")
_LINK_URL_END = re.compile(r"[)\s]")
_LINK_CLOSE = re.compile(r"(?:\s+\"[^\"]*\")?\)")
_BARE_URL = re.compile(r"<?\bhttps?://[^\s<>]+>?")
#: A bare "+1" (an upvote announced in a comment): site talk, not part of the conversation.
_PLUS_ONE = re.compile(r"(?:(?<=\s)|^)\+1\b[.!]*")
_SPACE_BEFORE_PUNCT = re.compile(r"(?<![ \t])[ \t]+([,.;:!?)])")  # from a run's start only: linear (issue 15)
_SPACES = re.compile(r"[ \t]{2,}")


def _links_to_text(text: str) -> tuple[str, int]:
    """``(text with every Markdown link [text](url) replaced by its text, number replaced)``: what
    ``re.subn(r'\\[([^\\]\\n]+)\\]\\((?:https?|ftp)://[^)\\s]+(?:\\s+"[^"]*")?\\)', r'\\1', text)`` returns, in
    linear time.

    The regular expression tries every ``[`` and scans from each to the next ``]`` or line end (and from each
    ``](http://`` to the URL's end): quadratic on a line of ``[`` or of ``[a](http://x`` repeated (20,000
    characters: 1.5 s). Here a failed ``[`` skips every later ``[`` up to that same ``]`` (their link text ends
    there too, so they fail alike), and the end of a URL run is found once for all the ``](http://`` in it (a
    URL holds no ``)`` or space, so where it ends does not depend on where it starts in the run).
    """
    out: list[str] = []
    pos = count = 0
    run_start = run_end = -1  # the last URL run scanned: text[run_start:run_end] holds no ")" or space
    start = text.find("[")
    while start >= 0:
        found = _LINK_TEXT_END.search(text, start + 1)
        if found is None:
            break
        end = found.start()
        url = _LINK_URL_START.match(text, end) if end > start + 1 else None  # (text[end] is "]" if it matches)
        if url is not None:
            at = url.end()
            if not run_start <= at <= run_end:
                stop = _LINK_URL_END.search(text, at)
                run_start, run_end = at, stop.start() if stop is not None else len(text)
            close = _LINK_CLOSE.match(text, run_end) if run_end > at else None
            if close is not None:
                out.append(text[pos:start])
                out.append(text[start + 1:end])
                pos = close.end()
                count += 1
                start = text.find("[", pos)
                continue
        start = text.find("[", end)
    if not count:
        return text, 0
    out.append(text[pos:])
    return "".join(out), count


def comment_markdown(text: str) -> tuple[str, dict[str, int]]:
    """Clean a Stack Exchange comment's text for a dialogue turn.

    Comments are stored as their Markdown source (``*em*``, ``**strong**``, `` `code` ``, ``[text](url)``; no
    block markup) with HTML entities; this decodes entities, removes ``@name`` mentions (the reply is addressed to
    the other speaker anyway; a possessive ``@name's`` becomes "their"), bare ``+1`` votes and the "let us continue
    this discussion in chat" notice, replaces links by their text and drops bare URLs (as
    ``clean`` does for answers), and tidies the spaces left behind. Code spans are kept as written.

    Returns:
        ``(text, changes)``: the cleaned text and counts of ``mentions``, ``links``, ``urls`` and ``votes``
        removed.
    """
    text = html.unescape(text)
    changes = {"mentions": 0, "links": 0, "urls": 0, "votes": 0}
    parts = re.split(r"(`[^`\n]+`)", text)  # code spans are left alone
    for i in range(0, len(parts), 2):
        part, n = _links_to_text(parts[i])
        changes["links"] += n
        part, n = _BARE_URL.subn("", part)
        changes["urls"] += n
        part = _CHAT_MOVED.sub("", part)
        part, n = _POSSESSIVE.subn("their", part)
        changes["mentions"] += n
        part, n = _MENTION.subn("", part)
        changes["mentions"] += n
        part, n = _PLUS_ONE.subn("", part)
        changes["votes"] += n
        parts[i] = _SPACES.sub(" ", _SPACE_BEFORE_PUNCT.sub(r"\1", part))
    cleaned = "".join(parts).strip().strip(",;:").strip()
    if cleaned[:1].islower() and changes["mentions"] and text.lstrip().startswith("@"):
        cleaned = cleaned[0].upper() + cleaned[1:]  # "@JohnP yes, ..." -> "Yes, ..."
    return cleaned, changes


class DialogueClean(Filter):
    """Turn a dialogue's raw turns into chat messages.

    The question's and the answer's HTML are cleaned as ``clean`` cleans answers (:func:`html_to_markdown`:
    code blocks and lists kept, links, images and other tags removed); comments with :func:`comment_markdown`
    (entities decoded, ``@name`` mentions, links and URLs removed). The first user turn is ``candidate.prompt``
    (so ``prompt_choice`` may run first to pick title or body, as LIMA does for single-turn Stack Exchange rows).

    Transforms: sets ``meta["messages"]`` (``[{"role", "content"}, ...]``, user first, alternating), removes
    ``meta["turns"]`` and ``meta["response_format"]``, and sets ``candidate.response`` to the assistant turns
    joined by blank lines (what the single-turn style filters then read).
    Value: ``{"turns", "mentions", "links", "urls", "images"}`` (counts; ``turns`` is the number of messages).
    Reasons: ``empty_turn`` (a turn is empty after cleaning), ``not_a_dialogue`` (no raw turns: the candidate did
    not come from a dialogue source).
    """

    name = "dialogue_clean"
    reasons = ("empty_turn", "not_a_dialogue")
    defaults = {}

    def measure(self, candidate: Candidate) -> dict[str, int]:
        turns = candidate.meta.pop("turns", None)
        counts = {"turns": 0, "mentions": 0, "links": 0, "urls": 0, "images": 0, "empty": 0}
        if not turns:
            return {**counts, "turns": -1}
        messages = []
        for index, turn in enumerate(turns):
            if index == 0:
                content = candidate.prompt
                if candidate.meta.get("prompt_field") is None:  # no prompt_choice ran: the title is the prompt
                    content = turn.get("title") or candidate.prompt
            elif turn.get("format") == "html":
                content, changes = html_to_markdown(turn["content"])
                counts["links"] += changes["links"]
                counts["images"] += changes["images"]
            else:
                content, changes = comment_markdown(turn["content"])
                for key in ("mentions", "links", "urls"):
                    counts[key] += changes[key]
            if not content.strip():
                counts["empty"] += 1
            messages.append({"role": turn["role"], "content": content})
        candidate.meta["messages"] = messages
        candidate.meta.pop("response_format", None)
        candidate.prompt = messages[0]["content"]
        candidate.response = "\n\n".join(m["content"] for m in messages if m["role"] == "assistant")
        counts["turns"] = len(messages)
        return counts

    def decide(self, value: dict[str, int]) -> str | None:
        if value["turns"] < 0:
            return "not_a_dialogue"
        return "empty_turn" if value["empty"] else None


class TurnCount(Filter):
    """How many exchanges (a user turn and the assistant's reply) a dialogue has, question and answer included.

    LIMA section 6 gives no bound; ours: at least ``min_exchanges`` (default 2: the question and answer, then one
    follow-up and reply), at most ``max_exchanges`` (default 8); both bounds are kept. Run after
    ``dialogue_clean``.

    Value: the number of assistant turns in ``meta["messages"]`` (int). Reasons: ``too_few_turns``,
    ``too_many_turns``.
    """

    name = "turn_count"
    reasons = ("too_few_turns", "too_many_turns")
    defaults = {"min_exchanges": 2, "max_exchanges": 8}

    def measure(self, candidate: Candidate) -> int:
        return sum(m["role"] == "assistant" for m in candidate.meta.get("messages", []))

    def decide(self, value: int) -> str | None:
        if value < self.min_exchanges:
            return "too_few_turns"
        if value > self.max_exchanges:
            return "too_many_turns"
        return None


class TurnLength(Filter):
    """Length in characters of each turn of a dialogue (cleaned text), after ``dialogue_clean``.

    The answer (the first assistant turn) is bounded by ``answer_min_chars`` / ``answer_max_chars`` (default
    LIMA's 1,200 / 4,096 for Stack Exchange answers, section 2.1); every later turn (the comments) by ``min_chars``
    / ``max_chars`` (ours: 20 / 1,000; a Stack Exchange comment holds at most 600 characters, and a turn may join
    two). The question is not bounded (``prompt_choice`` bounds a body prompt). Bounds are kept (inclusive).

    Value: ``{"answer": int, "shortest": int, "longest": int}`` (characters; shortest / longest over the comment
    turns, -1 when there are none).
    Reasons: ``answer_too_short``, ``answer_too_long``, ``turn_too_short``, ``turn_too_long``.
    """

    name = "turn_length"
    reasons = ("answer_too_short", "answer_too_long", "turn_too_short", "turn_too_long")
    defaults = {"answer_min_chars": 1200, "answer_max_chars": 4096, "min_chars": 20, "max_chars": 1000}

    def measure(self, candidate: Candidate) -> dict[str, int]:
        messages = candidate.meta.get("messages", [])
        answer = next((len(m["content"]) for m in messages if m["role"] == "assistant"), 0)
        later = [len(m["content"]) for m in messages[2:]]
        return {"answer": answer, "shortest": min(later, default=-1), "longest": max(later, default=-1)}

    def decide(self, value: dict[str, int]) -> str | None:
        if value["answer"] < self.answer_min_chars:
            return "answer_too_short"
        if value["answer"] > self.answer_max_chars:
            return "answer_too_long"
        if 0 <= value["shortest"] < self.min_chars:
            return "turn_too_short"
        if value["longest"] > self.max_chars:
            return "turn_too_long"
        return None
