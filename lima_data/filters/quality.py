"""Quality heuristics for responses (Gopher-style repetition, symbol and alphabetic ratios, leftover markup). They
look at prose only: fenced and inline code are left out of the measures, since code legitimately repeats lines and
holds symbols. (PII replacement, which skips code the same way, is :mod:`lima_data.filters.pii`.)"""

from __future__ import annotations

import re
from collections import Counter
from itertools import chain

from ..candidate import Candidate
from ..text import strip_code, strip_math, strip_quotes
from .base import Filter, match_spans

_WORD = re.compile(r"\w+")
#: Leftover markup, each form written whole so that prose and LaTeX do not look like it: an HTML tag with
#: well-formed attributes (``<div class="x">``, not the ``<p$ ... $n>`` of ``$k<p$ and $n>p$``), an entity, a
#: wiki link ``[[...]]`` or template ``{{...}}`` on one line, a BBCode pair ``[b]...[/b]`` (not ``x[i]`` alone).
_MARKUP = re.compile(
    r"</?(?:div|span|p|br|a|img|table|td|tr|li|ul|ol|script|style|font|center)"
    r"(?:\s+[\w:-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>=$]+))?)*\s*/?>"
    r"|&(?:nbsp|amp|lt|gt|quot|#\d+|#x[0-9a-f]+);"
    r"|\[\[[^\[\]\n]{1,200}\]\]|\{\{[^{}\n]{1,200}\}\}"
    r"|\[(b|i|u|url|img|quote|color|size)(?:=[^\]\n]{0,200})?\][^\n]{0,500}?\[/\1\]",
    re.I)
#: An ellipsis: three or four dots, or "…" (a run of more dots is a dot leader in a table, not an ellipsis).
#: Written to open with the dot (the check of the character before it is a look-behind placed after it, as in
#: :func:`~lima_data.text.word_pattern`), so the regex engine skips to the next dot at once: 6x faster than
#: ``(?<!\.)\.{3,4}(?!\.)``, the same matches.
_ELLIPSIS = re.compile(r"\.(?<!\.\.)\.{2,3}(?!\.)|\u2026")
#: Sentence breaks: whitespace after ``.``, ``!`` or ``?``, or a run of line breaks (``(?<=[.!?])\s+|\n+``,
#: written to open with the whitespace character so the engine skips to it at once: 2x faster, the same splits).
_SENTENCE = re.compile(r"\s(?:(?<=[.!?]\s)\s*|(?<=\n)\n*)")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_HEADING_HASHES = re.compile(r"^[ \t]*#{1,6}[ \t]", re.M)
#: A whitespace token with no ASCII letter, matched in ``" " + text`` after the whitespace before it (few in prose:
#: numbers, dashes, Markdown syntax, other scripts). Every other token has a letter, so tokens and letters are
#: counted from ``text.split()`` and these few (3x faster than a regex match per token).
_NO_ASCII_LETTER_TOKEN = re.compile(r"\s([^\sA-Za-z]+)(?!\S)")
#: A letter or digit: ``[^\W_]`` is exactly ``str.isalnum`` per character.
_ALNUM = re.compile(r"[^\W_]")


def _dup_fraction(items: list[str]) -> float:
    """Share of characters in items that repeat an earlier item (Gopher's duplicate line / paragraph fraction)."""
    total = sum(len(i) for i in items)
    if not total:
        return 0.0
    seen: set[str] = set()
    dup = 0
    for item in items:
        if item in seen:
            dup += len(item)
        seen.add(item)
    return dup / total


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[i:] for i in range(n))))


def _top_ngram_share(words: list[str], total: int, n: int) -> float:
    """Share of the ``total`` word characters covered by the most frequent word n-gram (Gopher), at most 1 (of
    n-grams equally frequent, the first to occur)."""
    if len(words) < n + 1 or not total:
        return 0.0
    gram, count = Counter(_ngrams(words, n)).most_common(1)[0]
    if count < 2:
        return 0.0
    return min(1.0, count * sum(map(len, gram)) / total)


def quality_measures(markdown: str) -> dict[str, float]:
    """Measures of the prose of a Markdown response, code and LaTeX math removed
    (:func:`~lima_data.text.strip_math`): ``dup_lines``, ``dup_paragraphs``, ``symbol_ratio`` (``#`` outside
    headings and ellipses -- ``...``, ``....``, ``…``, not the dot leaders of a table -- per word),
    ``alpha_ratio`` (words with a letter; a word is a whitespace token with a letter or digit, so Markdown syntax
    such as ``>``, ``-``, ``**`` and dashes are not words), ``markup`` (leftover HTML tags,
    entities, wiki or BBCode markup), ``words`` (prose words); and, on the writer's own words only (blockquote lines
    removed: a quoted source or a prompt quoted twice repeats what someone else wrote), ``top_2gram`` /
    ``top_3gram`` / ``top_4gram`` and ``dup_sentences`` (share of the characters of sentences of at least 6 words
    that repeat an earlier sentence, case and punctuation aside); ``own_words`` (words outside blockquotes)."""
    prose = strip_math(strip_code(markdown))
    lines = list(filter(None, map(str.strip, prose.splitlines())))
    paragraphs = list(filter(None, map(str.strip, _PARAGRAPH_BREAK.split(prose))))
    # tokens: whitespace tokens with a letter or digit (Markdown syntax, dashes out); alphabetic: those with a letter
    split = len(prose.split())
    no_ascii_letter = _NO_ASCII_LETTER_TOKEN.findall(" " + prose)
    tokens = split - sum(1 for t in no_ascii_letter if not _ALNUM.search(t))
    alphabetic = split - len(no_ascii_letter) + sum(1 for t in no_ascii_letter if any(map(str.isalpha, t)))
    lowered = prose.lower()
    own_lowered = strip_quotes(prose, spans=False).lower() if ">" in prose else lowered  # blockquote lines out
    # lower-casing maps no character to or from whitespace or ".!?", so the breaks fall where they fall in own_prose;
    # a break is whitespace, never part of a word, so the sentences' words are the text's words
    sentence_words = [_WORD.findall(s) for s in _SENTENCE.split(own_lowered)]
    own = list(chain.from_iterable(sentence_words))
    words = own if own_lowered is lowered else _WORD.findall(lowered)
    own_total = sum(map(len, own))
    sentences = [" ".join(s) for s in sentence_words]
    symbols = (_HEADING_HASHES.sub("", prose).count("#") if "#" in prose else 0) + len(_ELLIPSIS.findall(prose))
    return {
        "dup_lines": round(_dup_fraction(lines), 4),
        "dup_paragraphs": round(_dup_fraction(paragraphs), 4),
        "top_2gram": round(_top_ngram_share(own, own_total, 2), 4),
        "top_3gram": round(_top_ngram_share(own, own_total, 3), 4),
        "top_4gram": round(_top_ngram_share(own, own_total, 4), 4),
        "dup_sentences": round(_dup_fraction([s for s in sentences if s.count(" ") >= 5]), 4),
        "symbol_ratio": round(symbols / tokens, 4) if tokens else 0.0,
        "alpha_ratio": round(alphabetic / tokens, 4) if tokens else 1.0,
        "markup": len(_MARKUP.findall(prose)),
        "words": len(words),
        "own_words": len(own),
    }


class Quality(Filter):
    """Drop responses whose prose repeats itself, is mostly symbols, or still holds markup.

    Thresholds (Gopher, Rae et al. 2021, appendix A; ours where marked): duplicate lines > ``max_dup_lines``
    (0.30) or paragraphs > ``max_dup_paragraphs`` (0.30) of the characters; the most frequent 2/3/4-gram covers
    more than ``max_top_2gram`` / ``_3gram`` / ``_4gram`` (0.20 / 0.18 / 0.16); repeated sentences cover more than
    ``max_dup_sentences`` (0.30, Gopher's duplicate-line bound applied to sentences; the Stack Exchange chain of
    lima.toml sets 0.05: an answer has no reason to repeat a sentence, while a wikiHow article repeats its steps
    from method to method, e.g. "Draw the Powerpuff Girls", 10%). Gopher's duplicate n-gram fractions (5-grams
    0.15 ... 10-grams 0.10) are not used: they are web-page rules, and on 200-600-word answers they fire on
    structure, not on repetition -- list items of one shape ("4 ounces fresh or 2 ounces dried ..."), a technical
    term or an example used throughout, a prompt quoted twice. The 5-gram rule dropped 13 of the 545 real Stack
    Exchange answers of 1,200-4,096 characters in ../shared/data and the 10-gram rule 4, all of them answers a
    reader keeps; repeated sentences single out the one answer with a pasted-twice passage (9.6% of its prose; the
    next highest is 2%). ``symbol_ratio`` > 0.10; ``alpha_ratio`` < 0.80; any leftover markup (``max_markup``
    0, ours). The ratio rules apply only when the prose has at least ``min_words`` (50, ours) words, so a short
    answer that is mostly code is not judged on a few words; the repetition rules (sentences, top n-grams) only
    when the writer's own words are at least ``min_repetition_words`` (100, ours): on fewer, one name used three
    times covers a fifth of the text ("the King's Shilling" in a real beer answer that is mostly a quotation). Each bound is kept when equal.

    Value: the measures of :func:`quality_measures`. Reasons: ``repeated_lines``, ``repeated_paragraphs``,
    ``repeated_sentences``, ``repeated_ngrams``, ``symbol_ratio``, ``alpha_ratio``, ``leftover_markup``.
    """

    name = "quality"
    reasons = ("repeated_lines", "repeated_paragraphs", "repeated_sentences", "repeated_ngrams", "symbol_ratio",
               "alpha_ratio", "leftover_markup")
    defaults = {
        "max_dup_lines": 0.30, "max_dup_paragraphs": 0.30, "max_top_2gram": 0.20, "max_top_3gram": 0.18,
        "max_top_4gram": 0.16, "max_dup_sentences": 0.30, "max_symbol_ratio": 0.10, "min_alpha_ratio": 0.80,
        "max_markup": 0, "min_words": 50, "min_repetition_words": 100,
    }

    def measure(self, candidate: Candidate) -> dict[str, float]:
        return quality_measures(candidate.response)

    def decide(self, value: dict[str, float]) -> str | None:
        if value["markup"] > self.max_markup:
            return "leftover_markup"
        if value["words"] < self.min_words:
            return None
        if value["dup_lines"] > self.max_dup_lines:
            return "repeated_lines"
        if value["dup_paragraphs"] > self.max_dup_paragraphs:
            return "repeated_paragraphs"
        if value.get("own_words", value["words"]) >= self.min_repetition_words:  # on the writer's own words
            if value["dup_sentences"] > self.max_dup_sentences:
                return "repeated_sentences"
            if (value["top_2gram"] > self.max_top_2gram or value["top_3gram"] > self.max_top_3gram
                    or value["top_4gram"] > self.max_top_4gram):
                return "repeated_ngrams"
        if value["symbol_ratio"] > self.max_symbol_ratio:
            return "symbol_ratio"
        if value["alpha_ratio"] < self.min_alpha_ratio:
            return "alpha_ratio"
        return None

    def explain(self, candidate: Candidate, value: dict[str, float]) -> list[dict[str, str]] | None:
        """What the reason points at, in the prose ``measure`` read (:func:`quality_measures`: code and math
        removed): the leftover markup; the first repeated line or paragraph; the first repeated sentence of the
        writer's own words; for ``repeated_ngrams`` every occurrence of the most frequent n-gram of the measure over
        its bound; ``None`` for the ratio rules."""
        reason = self.decide(value)
        prose = strip_math(strip_code(candidate.response))
        if reason == "leftover_markup":
            return match_spans("response", prose, (m.span() for m in _MARKUP.finditer(prose)))
        if reason in ("repeated_lines", "repeated_paragraphs"):
            items = ([line.strip() for line in prose.splitlines()] if reason == "repeated_lines"
                     else [p.strip() for p in re.split(r"\n\s*\n", prose)])
            seen: set[str] = set()
            repeated = next((i for i in items if i and (i in seen or seen.add(i))), None)
            if repeated is None:
                return None
            return match_spans("response", prose, (m.span() for m in re.finditer(re.escape(repeated), prose)))
        own = strip_quotes(prose, spans=False)
        if reason == "repeated_sentences":
            spans, seen_at = [], {}
            start = 0
            for piece in _SENTENCE.split(own):
                at = own.find(piece, start)
                start = at + len(piece)
                key = " ".join(_WORD.findall(piece.lower()))
                if key.count(" ") < 5:
                    continue
                if key in seen_at:
                    spans += [seen_at[key], (at, at + len(piece))] if seen_at[key] not in spans else [
                        (at, at + len(piece))]
                else:
                    seen_at[key] = (at, at + len(piece))
            return match_spans("response", own, spans) if spans else None
        if reason == "repeated_ngrams":
            n = next((k for k in (2, 3, 4) if value.get(f"top_{k}gram", 0) > getattr(self, f"max_top_{k}gram", 1)),
                     None)
            grams = Counter(_ngrams(_WORD.findall(own.lower()), n)).most_common(1) if n else []
            if not grams:
                return None
            pattern = re.compile(r"(?<!\w)" + r"\W+".join(map(re.escape, grams[0][0])) + r"(?!\w)", re.I)
            return match_spans("response", own, (m.span() for m in pattern.finditer(own)))
        return None
