"""Small text helpers shared by sources and filters: Markdown code spans, word matching, stable hashing, JSON
lines parsing, reading UTF-8 text files line by line."""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from ..errors import InputError


def loads_json(text: str | bytes) -> Any:
    """Parse one JSON value (a JSON line) with orjson, about 3x faster than ``json`` on Pushshift rows; what orjson
    refuses but ``json`` reads (``NaN``, lone surrogate escapes) is read by ``json``, and so is a text with 19
    digits in a row: orjson reads an integer beyond 64 bits as a float, ``json`` keeps it exact.

    Raises:
        json.JSONDecodeError: the text is not JSON (``.msg`` says why), and also JSON that Python cannot read into
            values: arrays / objects nested deeper than ``json``'s recursion allows (orjson stops at 1,024 levels,
            then ``json`` raises RecursionError) and an integer of more than 4,300 digits (CPython's limit for
            ``int`` from text, ``sys.get_int_max_str_digits``; ``json`` raises a plain ValueError). Both are found
            in damaged or hostile dumps, never in real rows, and must be one malformed row, not a crash.
    """
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _LONG_DIGITS in data.translate(_DIGITS_TO_ZERO):
        return _stdlib_loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return _stdlib_loads(text)


def _stdlib_loads(text: str | bytes) -> Any:
    """``json.loads(text)``, with the two failures that are not ``JSONDecodeError`` turned into one."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        message = "arrays or objects nested too deep to read"
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion ..."
        if "digits" not in str(exc):
            raise
        message = "an integer too long to read (more than 4,300 digits)"
    raise json.JSONDecodeError(message, text if isinstance(text, str) else "", 0) from None


#: ASCII digits mapped to "0", and 19 of them in a row: where an integer beyond 64 bits could be. ``bytes.translate``
#: and ``in`` take ~0.4 us on a 200-byte line, a regex search ~1.9 us.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
_INLINE = re.compile(r"`[^`\n]+`")
_APOSTROPHES = "'\u2019"
#: A fence's opening line and, per marker, its closing line (CommonMark's ``` and ~~~ fences).
_FENCE_OPEN = re.compile(r"^(```|~~~)[^\n]*\n", re.M)
_FENCE_CLOSE = {marker: re.compile(rf"^{re.escape(marker)}[ \t]*$", re.M) for marker in ("```", "~~~")}
#: An HTML code element's opening tag (up to its ``>``, found with str.find) and, per tag, its closing tag.
_HTML_CODE_OPEN = re.compile(r"<(pre|code)\b", re.I)
_HTML_CODE_CLOSE = {tag: re.compile(rf"</{tag}\s*>", re.I) for tag in ("pre", "code")}


def _sub_blocks(text: str, opener: re.Pattern, body_start, closer, repl: str) -> str:
    """Replace each block from an ``opener`` match to the first match of its ``closer(match)`` pattern searched
    from ``body_start(match)`` with ``repl``, left to right, as ``re.sub`` of a lazy ``open.*?close`` pattern
    would, in linear time: an opener with no closer after it (a block cut off) makes every later opener of the
    same kind unclosable too, so it is searched for once, not once per opener (the lazy pattern took > 10 s on
    100 KB of unclosed openers). ``body_start`` returns -1 when the opener cannot end (the lazy pattern fails)."""
    out: list[str] = []
    last = pos = 0
    dead: set[str] = set()
    while (found := opener.search(text, pos)) is not None:
        kind = found.group(1).lower()
        start = body_start(found) if kind not in dead else -1
        close = closer(kind).search(text, start) if start >= 0 else None
        if close is None:
            if start >= 0:
                dead.add(kind)
            pos = found.start() + 1
            continue
        out += [text[last:found.start()], repl]
        last = pos = close.end()
    out.append(text[last:])
    return "".join(out)


def _next_fence(markdown: str, pos: int, dead: set[str]) -> tuple[int, int] | None:
    """``(start, end)`` of the first fenced block opening at or after ``pos`` (a marker in ``dead`` has no closing
    line left: its openers are passed over; a marker found unclosed is added to it)."""
    while (found := _FENCE_OPEN.search(markdown, pos)) is not None:
        marker = found.group(1)
        close = _FENCE_CLOSE[marker].search(markdown, found.end()) if marker not in dead else None
        if close is not None:
            return found.start(), close.end()
        dead.add(marker)
        pos = found.start() + 1
    return None


def code_spans(markdown: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each piece of code in ``markdown``, left to right: fenced blocks (a ``` or ~~~ line to
    the first closing line of the same marker) and inline code (```...``` on one line). The same spans as
    ``re.finditer`` of ``(^(```|~~~)[^\n]*\n.*?^\2[ \t]*$|`[^`\n]+`)`` (``re.S | re.M``), in linear time: an
    unclosed fence is searched for once, not once per later opener (see :func:`_sub_blocks`)."""
    if "`" not in markdown and "~~~" not in markdown:
        return
    pos, dead = 0, set()
    fence: tuple[int, int] | None = None  # the next fenced block at or after pos, once searched
    inline: re.Match | None = None  # the next inline span at or after pos, once searched
    fences_left = True
    while True:
        if fence is not None and fence[0] < pos:
            fence = None
        if fence is None and fences_left:
            fence = _next_fence(markdown, pos, dead)
            fences_left = fence is not None
        if inline is None or inline.start() < pos:
            inline = _INLINE.search(markdown, pos)
        if inline is not None and (fence is None or inline.start() < fence[0]):
            yield inline.span()
            pos = inline.end()
        elif fence is not None:
            yield fence
            pos = fence[1]
        else:
            return


def strip_code(markdown: str) -> str:
    """Remove fenced code blocks and inline code spans from Markdown, so style rules look at prose only.

    An unclosed fence (a response cut mid-block) is left as it is.
    """
    if "`" not in markdown and "~~~" not in markdown:  # no code: skip the scans
        return markdown
    fenced = _sub_blocks(markdown, _FENCE_OPEN, lambda m: m.end(), _FENCE_CLOSE.__getitem__, "\n")
    return _INLINE.sub(" ", fenced)


def _strip_html_code(markup: str) -> str:
    """``<pre>``/``<code>`` elements (to the first closing tag of the same name, any case) replaced by a space."""
    ends: list[int] = [-2]  # the last '>' found: the first one after an opener ends its tag ([^>]*>)

    def body_start(found: re.Match) -> int:
        if ends[0] < found.end() and ends[0] != -1:
            ends[0] = markup.find(">", found.end())
        return ends[0] + 1 if ends[0] >= 0 else -1

    return _sub_blocks(markup, _HTML_CODE_OPEN, body_start, _HTML_CODE_CLOSE.__getitem__, " ")


#: An innermost quoted block: no ``<blockquote`` inside, up to the first ``</blockquote>`` (the same spans as
#: ``<blockquote\b[^>]*>(?:(?!<blockquote\b).)*?</blockquote\s*>``, written as runs of ``[^<]`` so the regex engine
#: checks a look-ahead only at each ``<``, not at each character).
_HTML_BLOCKQUOTE = re.compile(r"<blockquote\b[^>]*>[^<]*(?:<(?!blockquote\b|/blockquote\s*>)[^<]*)*</blockquote\s*>",
                              re.S | re.I)
_HTML_BLOCK_TAG = re.compile(r"</?(?:p|div|li|ul|ol|h[1-6]|br|hr|table|tr|td|th|dl|dt|dd|blockquote)\b[^>]*>", re.I)
_HTML_TAG = re.compile(r"<[^>]*>")


_HTML_HEADING = re.compile(r"<(h[1-6])\b[^>]*>.{0,1000}?</\1\s*>"
                           r"|<p>\s*(?:<a\b[^>]*>\s*)?<(strong|b)>((?:(?!</?(?:strong|b|p)>).){1,400}?)</\2>"
                           r"\s*(?:</a>\s*)?:?\s*</p>",
                           re.S | re.I)


def _html_heading(match: re.Match) -> str:
    if match.group(1) or len(_HTML_TAG.sub("", match.group(3))) <= 80:
        return "\n"
    return match.group(0)


def html_prose(markup: str, *, blockquotes: bool = True, headings: bool = True) -> str:
    """The prose of a post's HTML, for style rules that run before HTML -> Markdown cleaning: code (``<pre>``,
    ``<code>``) removed, block tags turned into line breaks, other tags removed (their text kept), entities
    decoded. With ``blockquotes=False`` quoted blocks (nested ones too) are removed as well; with
    ``headings=False`` headings (``<h1>``-``<h6>``, a paragraph that is only bold; see :func:`strip_headings`).

    Regular expressions suffice here because the dumps' HTML is generated by Stack Exchange's Markdown renderer
    (balanced, no comments or scripts in the body); on all 6,556 real posts of ``../shared/data`` the
    ``first_person`` decisions equal those made on the cleaned Markdown (tested), at about 1/30 of the cost.
    """
    text = _strip_html_code(markup)
    if not headings:
        text = _HTML_HEADING.sub(_html_heading, text)
    while not blockquotes:
        stripped = _HTML_BLOCKQUOTE.sub("\n", text)
        if stripped == text:
            break
        text = stripped
    end = text.rfind(">") + 1  # no tag ends after the last ">": without the cut each "<" there scans to the end
    return html.unescape(_HTML_TAG.sub("", _HTML_BLOCK_TAG.sub("\n", text[:end])) + text[end:])


_BLOCKQUOTE = re.compile(r"^[ \t]*>.*$", re.M)
_QUOTED = re.compile(r"[\"\u201c][^\"\u201c\u201d\n]{1,300}[\"\u201d]")
#: 'single-quoted' and ‘curly’ spans: the opening quote follows a space or a bracket, the closing one ends a word
#: (the apostrophes of "don't" inside are passed over: the match is lazy and needs a non-word character after the
#: closing quote). The check of the character before the opening quote is a look-behind placed after the quote, so
#: the regex engine skips to the next quote at once (the same matches as ``(?<![^\s(\[])['\u2018]...``).
_SINGLE_QUOTED = re.compile(r"['\u2018](?<![^\s(\[]['\u2018])(?=\S)[^\n]{1,300}?(?<=\S)['\u2019](?![\w'\u2019])")
#: A dialogue or transcript line: a speaker label of one to three capitalised words, then a colon ("Alice: I ...",
#: "Customer Service: ..."). Labels that head the writer's own text ("Note:", "Edit:") are not speakers.
#: Matched with the line break before the line (in ``"\n" + text``), so the regex engine skips from line break to
#: line break instead of trying ``^`` at every character (the same lines; no match crosses a line break).
_DIALOGUE = re.compile(r"\n[ \t]*(?:[-*][ \t]+)?[*_]{0,2}([A-Z][\w.'\u2019-]*(?:[ \t]+[A-Z][\w.'\u2019-]*){0,2})"
                       r"[*_]{0,2}[ \t]*[*_]{0,2}:[*_]{0,2}[ \t]+\S.*$", re.M)
_NOT_SPEAKERS = {
    "note", "notes", "edit", "update", "tip", "tips", "warning", "example", "examples", "answer", "summary",
    "ps", "p.s", "nb", "n.b", "source", "sources", "step", "result", "results", "solution", "problem", "pros",
    "cons", "conclusion", "caveat", "disclaimer", "aside", "also", "however", "otherwise", "background",
    "short answer", "long answer", "tl;dr", "tldr", "important",
}


def _dialogue_line(match: re.Match) -> str:
    return match.group(0) if match.group(1).lower().rstrip(".") in _NOT_SPEAKERS else "\n"


def strip_quotes(markdown: str, *, spans: bool = True) -> str:
    """Remove blockquote lines (``> ...``) and, with ``spans``, quoted speech: double-quoted spans (``"..."``,
    ``“...”``), single-quoted spans (``'...'``, ``‘...’``), each on one line and at most 300 characters, and
    dialogue or transcript lines that open with a speaker label ("Alice: I never said that"; not "Note:",
    "Edit:", ...): words quoted from someone else are not the writer's own voice (LIMA_RELEASE.md: quoted speech
    and dialogue transcripts in LIMA's kept answers)."""
    text = _BLOCKQUOTE.sub("", markdown) if ">" in markdown else markdown
    if not spans:
        return text
    if ":" in text:
        text = _DIALOGUE.sub(_dialogue_line, "\n" + text)[1:]
    return _SINGLE_QUOTED.sub(" ", _QUOTED.sub(" ", text))


#: Spans are bounded (inline 400 characters, a display 4,000, an environment 8,000), so an unclosed delimiter in a
#: long text costs at most the bound per position instead of quadratic time (100 KB of "\(": 0.14 s, not > 10 s).
#: Every alternative opens with ``$`` or ``\`` (an inline ``$``'s look-behind is placed after it), so the regex
#: engine skips to those characters at once.
_MATH = re.compile(
    r"\$\$.{1,4000}?\$\$"                                   # $$ display $$
    r"|\$(?<![\\$\w]\$)(?=[^\s$\d])[^$\n]{1,400}?(?<=[^\s\\])\$(?![\w$])"  # $inline$ (not "$5 and $10")
    r"|\\\(.{1,400}?\\\)|\\\[.{1,4000}?\\\]"                      # \( inline \)  \[ display \]
    r"|\\begin\{(\w+\*?)\}.{0,8000}?\\end\{\1\}",            # \begin{align} ... \end{align}
    re.S,
)


def strip_math(text: str) -> str:
    """Remove LaTeX math (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``, ``\\begin{env}...\\end{env}``), as
    Stack Exchange's MathJax writes it in posts, so that symbols such as ``$I$`` or ``\\mathbb{I}`` are not read as
    words. A dollar followed by a digit or a space opens no math ("costs $5 and $10")."""
    if "$" not in text and "\\" not in text:
        return text
    return _MATH.sub(" ", text)


_MD_HEADING = re.compile(r"^[ \t]*(?:#{1,6}[ \t].*|\*\*[^*\n]{1,80}\*\*[ \t]*:?|__[^_\n]{1,80}__[ \t]*:?)$", re.M)


def strip_headings(markdown: str) -> str:
    """Remove heading lines: ATX headings (``## Tell me more``) and lines that are only bold (``**Tell me more**``),
    up to 80 characters. A heading labels a section; it is not a sentence in the writer's voice."""
    return _MD_HEADING.sub("", markdown)


def word_pattern(words: Iterable[str], *, case_sensitive: Iterable[str] = ()) -> re.Pattern[str]:
    """Compile one regex matching any of ``words`` as whole words.

    A word's apostrophe matches both ``'`` and ``’``. Words in ``case_sensitive`` match only as written;
    the others ignore case. Neighbouring letters, digits, apostrophes, ``/`` and ``-`` break a match, so
    ``I/O`` and ``I-beam`` are not the pronoun "I".

    The alternatives are grouped by their first character, which the pattern matches before anything else (the
    check of the character before it is a look-behind placed after it), so the regex engine skips most
    positions at once: 2-2.5x faster than one flat alternation, the same matches on every real post (tested).
    """
    sensitive = set(case_sensitive)
    groups: dict[str, list[str]] = {}
    for word in sorted(set(words), key=len, reverse=True):
        first, rest = word[0], word[1:]
        body = "".join(f"[{_APOSTROPHES}]" if ch in _APOSTROPHES else re.escape(ch) for ch in rest)
        body = re.sub(r"(?:\\ )+", r"\\s+", body)
        if first in _APOSTROPHES:
            head = f"[{_APOSTROPHES}]"
        elif word in sensitive or first.lower() == first.upper():
            head = re.escape(first)
        elif len(first.lower()) != 1 or len(first.upper()) != 1:  # e.g. "ß" upper-cases to "SS"
            head = f"(?i:{re.escape(first)})"
        else:
            head = f"[{re.escape(first.lower())}{re.escape(first.upper())}]"
        groups.setdefault(head, []).append(body if word in sensitive or not body else f"(?i:{body})")
    if not groups:
        return re.compile(r"(?!x)x")
    parts = [f"{head}(?<![\\w{_APOSTROPHES}/-].)(?:{'|'.join(bodies)})" for head, bodies in groups.items()]
    return re.compile(rf"(?:{'|'.join(parts)})(?![\w{_APOSTROPHES}/-])")


def stable_unit(*parts: object) -> float:
    """A number in [0, 1) that depends only on ``parts`` (sha256): a seeded coin that gives the same answer
    whatever order or process the candidates are seen in."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of a UTF-8 text file (a leading BOM removed; line endings kept).

    Raises:
        InputError: a line is not UTF-8 (file and line named), or the file is binary (holds NUL bytes).
    """
    with open(path, "rb") as fh:
        if b"\x00" in fh.read(1 << 13):  # an archive or other binary file: say so before reading it as lines
            raise InputError(path, "a binary file (NUL bytes), not UTF-8 text; name the right file")
        fh.seek(0)
        for line, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                                       "save the file as UTF-8", line) from None
            if "\x00" in text:
                raise InputError(path, "a binary file (NUL bytes), not UTF-8 text; name the right file", line)
            yield line, text


def read_text(path: str | Path) -> str:
    """The whole of a UTF-8 text file (BOM removed).

    Raises:
        InputError: a line is not UTF-8 (file and line named), or the file is binary (holds NUL bytes).
    """
    return "".join(text for _, text in utf8_lines(Path(path)))


_WORDS = re.compile(r"\w+")


def normalise(text: str) -> str:
    """Unicode NFKC, case-folded, whitespace runs collapsed to one space, stripped (what dedup and decontamination
    compare)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def normalised_words(text: str) -> list[str]:
    """The words (runs of letters, digits and ``_``) of ``text`` after :func:`normalise`."""
    return words_of_normalised(normalise(text))


def words_of_normalised(normalised: str) -> list[str]:
    """:func:`normalised_words` of text already :func:`normalise`-d (no second normalisation)."""
    return _WORDS.findall(normalised)
