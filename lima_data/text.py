"""Small text helpers shared by filters: Markdown code spans, word matching, stable hashing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_FENCED = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
_INLINE = re.compile(r"`[^`\n]+`")
_APOSTROPHES = "'\u2019"


def strip_code(markdown: str) -> str:
    """Remove fenced code blocks and inline code spans from Markdown, so style rules look at prose only.

    An unclosed fence (a response cut mid-block) is left as it is.
    """
    return _INLINE.sub(" ", _FENCED.sub("\n", markdown))


_BLOCKQUOTE = re.compile(r"^[ \t]*>.*$", re.M)
_QUOTED = re.compile(r"[\"\u201c][^\"\u201c\u201d\n]{1,300}[\"\u201d]")


def strip_quotes(markdown: str) -> str:
    """Remove blockquote lines (``> ...``) and double-quoted spans (``"..."``, ``“...”``, one line, at most 300
    characters): words quoted from someone else are not the writer's own voice."""
    return _QUOTED.sub(" ", _BLOCKQUOTE.sub("", markdown))


def word_pattern(words: Iterable[str], *, case_sensitive: Iterable[str] = ()) -> re.Pattern[str]:
    """Compile one regex matching any of ``words`` as whole words.

    A word's apostrophe matches both ``'`` and ``’``. Words in ``case_sensitive`` match only as written;
    the others ignore case. Neighbouring letters, digits, apostrophes, ``/`` and ``-`` break a match, so
    ``I/O`` and ``I-beam`` are not the pronoun "I".
    """
    sensitive = set(case_sensitive)
    parts = []
    for word in sorted(set(words), key=len, reverse=True):
        body = "".join(f"[{_APOSTROPHES}]" if ch in _APOSTROPHES else re.escape(ch) for ch in word)
        body = re.sub(r"(?:\\ )+", r"\\s+", body)
        parts.append(body if word in sensitive else f"(?i:{body})")
    if not parts:
        return re.compile(r"(?!x)x")
    return re.compile(rf"(?<![\w{_APOSTROPHES}/-])(?:{'|'.join(parts)})(?![\w{_APOSTROPHES}/-])")


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (sha256): a seeded coin that gives the same answer
    whatever order or process the candidates are seen in."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
