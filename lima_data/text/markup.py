"""HTML -> Markdown conversion of posts and articles, with the link pruning LIMA's cleaning needs: shared by the
sources (wikiHow pages are converted while they are read) and the filters (``clean`` converts Stack Exchange answers,
``prompt_choice`` question bodies), so it lives below both (DESIGN.md section 3, walls).

Built on BeautifulSoup and markdownify (:class:`_Converter` sets their options); what is ours is the pruning of links
that only pointed somewhere (:func:`html_to_markdown`'s rules), which no library does.
"""

from __future__ import annotations

import html
import re

from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter

from . import code_spans

_BLANK_RUNS = re.compile(r"\n{3,}")
#: Opening tags counted in the raw HTML (a regex count is exact for the well-formed HTML of the dumps, and far
#: cheaper than searching the parsed tree).
_COUNTED = {
    "links": re.compile(r"<a\b", re.I),
    "images": re.compile(r"<img\b", re.I),
    "code_blocks": re.compile(r"<pre\b", re.I),
    "lists": re.compile(r"<[ou]l\b", re.I),
}


def _strip_trailing(text: str) -> str:
    """``text`` with the spaces and tabs at the end of each line removed (what ``re.sub(r"[ \t]+$", "", text,
    flags=re.M)`` does, 4x faster: the regex tries every space)."""
    return "\n".join([line.rstrip(" \t") for line in text.split("\n")])


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


class _Tag(Tag):
    """bs4's ``Tag`` (the class :func:`html_to_markdown`'s soups are built of) with a cheaper ``find_parent`` for
    one plain tag name: it walks up the parents. bs4 (4.13 on) builds a ``SoupStrainer`` on every ``find_*`` call,
    and markdownify asks every tag for a ``<pre>`` parent, a third of its conversion time. Same result: a plain
    name (no ``prefix:``) matches a tag of that ``name``; anything else goes to bs4."""

    def find_parent(self, name=None, attrs=None, **kwargs):
        if not isinstance(name, str) or ":" in name or attrs or kwargs:
            # bs4's own default for attrs when none was given (its default differs between versions)
            return super().find_parent(name, **kwargs) if attrs is None else super().find_parent(name, attrs, **kwargs)
        parent = self.parent
        while parent is not None:
            if parent.name == name:
                return parent
            parent = parent.parent
        return None


def _tags(node, names: tuple[str, ...]) -> list:
    """The tags below ``node`` named one of ``names``, in document order: ``node.find_all(list(names))`` without
    bs4's per-call ``SoupStrainer`` (see :class:`_Tag`)."""
    return [el for el in node.descendants if isinstance(el, Tag) and el.name in names]


def _first_tag(node, names: tuple[str, ...]):
    """The first tag below ``node`` named one of ``names`` (``node.find(list(names))``), or ``None``."""
    return next((el for el in node.descendants if isinstance(el, Tag) and el.name in names), None)


def _parent_tag(node, names: tuple[str, ...]):
    """The nearest parent of ``node`` named one of ``names`` (``node.find_parent(list(names))``), or ``None``."""
    parent = node.parent
    while parent is not None:
        if parent.name in names:
            return parent
        parent = parent.parent
    return None


#: Private-use characters that stand in for a removed link during cleaning (never left in the output).
POINTER_MARK = "\ue000"   # opens the text of a link that only pointed at its target ("here", "this table")
POINTER_END = "\ue002"    # closes it
URL_MARK = "\ue001"       # a URL: a link whose text is a URL, or a bare URL in the prose
_MARKS = POINTER_MARK + URL_MARK
_LEFT_MARKS = re.compile("[\ue000\ue001\ue002]")
_POINTER = re.compile("\ue000([^\ue002]*)\ue002")
_URL = re.compile(r"(?:https?://|ftp://|www\.)[^\s<>\"'`)\]]*[^\s<>\"'`)\].,;:!?]")
_URL_TEXT = re.compile(r"\s*(?:https?://|ftp://|www\.)\S+\s*|\s*[\w-]+(?:\.[\w-]+)+/\S*\s*", re.I)
#: Link texts that only point at the link's target: without it they say nothing.
POINTER_TEXTS = frozenset(t.strip() for t in """
here|this|that|there|link|links|source|sources|website|site|page|webpage|article|post|blog|pdf|click here|here's
this link|this page|this article|this post|this site|this website|this table|this chart|this graph|this paper|
this document|this video|this one|this answer|this question|this thread|this tool|this list|this guide|this blog|
this blog post|this pdf|this source|this study|this report|this discussion|this calculator|this tutorial|
this example|this resource|this book|this image|this picture|this map|this summary|this comment|read more|
more info|more information|more details|full text|the link|the source|the article|the website|the page
""".replace("\n", "|").split("|")) - {""}
_LINK_FILLER = re.compile(r"[\s,;:.|/\-\u2013\u2014()\[\]*]+|\b(?:and|or|&)\b", re.I)
#: Words that make a sentence a pointer to somewhere else ("You can read more here", "See here").
_POINTING = re.compile(r"\b(?:see|visit|read|found|find|check out|look at|available|view(?:ed)?|click|"
                       r"download(?:ed)?|upload(?:ed)?|refer to|more (?:here|info|information|details)|"
                       r"discussion|article|linked|source[sd]?|via|go to|take a look)\b", re.I)
_SOURCE_LINE = re.compile(r"^[*_>\s-]*(?:source[sd]?|sourced from|from|via|credits?|references?|more info(?:rmation)?|"
                          r"see(?: also)?|links?|image|photo|picture|read more)\b", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])[*_)\]\"\u201d']*\s+(?=[*_(\[\"\u201c'A-Z0-9\ue000\ue001])")
_PAREN_MARK = re.compile(r"\s*\((?:[^()\n]{0,80}?)[\ue000\ue001](?:[^()\n]{0,80}?)\)")
_LIST_MARKER = re.compile(r"^([ \t]*(?:[-*+]|\d+[.)])[ \t]+|[ \t]*(?:>[ \t]?)+)")


def _prune_soup(soup) -> dict[str, int]:
    """Links in the parsed HTML: a paragraph made only of links (or a "Source: <link>" line) is removed, a link whose text is a
    URL becomes :data:`URL_MARK`, a link whose text is a pointer (:data:`POINTER_TEXTS`) becomes
    :data:`POINTER_MARK`; links inside code are left alone. Returns counts."""
    counts = {"link_paragraphs": 0}
    links = _tags(soup, ("a",))
    if not links:
        return counts
    blocks = {}
    for a in links:  # the paragraphs and list items that hold a link, once each, in document order
        block = _parent_tag(a, ("p", "li", "dd", "dt"))
        if block is not None:
            blocks.setdefault(id(block), block)
    for block in blocks.values():
        # A list item of links is content ("- Sierra Nevada Kellerweis"); only its URL or pointer links go, by the
        # line rules. A paragraph of links is a "further reading" line.
        if block.name == "li" or _first_tag(block, ("pre", "ul", "ol", "img", "blockquote")):
            continue
        in_links = {id(s) for a in _tags(block, ("a",)) for s in a.strings}
        rest = "".join(s for s in block.strings if id(s) not in in_links)
        if not _LINK_FILLER.sub("", rest).strip() or _SOURCE_LINE.match(rest.strip() + " ") and len(rest.split()) <= 4:
            block.decompose()
            counts["link_paragraphs"] += 1
    if counts["link_paragraphs"]:
        for item in _tags(soup, ("li",)):  # a list item whose only paragraph went
            if not item.get_text(strip=True) and not _first_tag(item, ("img", "pre")):
                item.decompose()
        for lst in _tags(soup, ("ul", "ol")):
            if not _first_tag(lst, ("li",)):
                lst.decompose()
    for a in _tags(soup, ("a",)):
        if _parent_tag(a, ("pre", "code")):
            continue
        text = a.get_text(" ", strip=True)
        if text and (_URL_TEXT.fullmatch(text) or text == a.get("href")):
            a.replace_with(URL_MARK)
        elif text.lower().strip(" .:!") in POINTER_TEXTS or re.search(r"\bhere\W*$", text, re.I):
            a.replace_with(POINTER_MARK + text + POINTER_END)
    return counts


def _prune_line(line: str, counts: dict[str, int]) -> str | None:
    """One Markdown line outside code with its link marks resolved (see :func:`html_to_markdown`); ``None`` when
    the whole line goes."""
    if not any(m in line for m in _MARKS):
        return line
    marker = _LIST_MARKER.match(line)
    prefix = marker.group(0) if marker else ""
    body = line[len(prefix):]
    body = _PAREN_MARK.sub("", body)  # "(see here)", "(here's one, as an example)", "(http://...)"
    words = len(re.findall(r"[^\W\d_]+", _POINTER.sub(" ", body).replace(URL_MARK, " ")))
    if any(m in body for m in _MARKS) and (words <= 5 or _SOURCE_LINE.match(body) and words <= 12):
        counts["pointer_sentences"] += 1
        return None  # "Sourced from http://...", "Link.", "More here."
    kept = []
    for sentence in _SENTENCE.split(body):
        if any(m in sentence for m in _MARKS):
            n = len(re.findall(r"[^\W\d_]+", sentence))
            if n <= 20 or _POINTING.search(sentence):
                counts["pointer_sentences"] += 1
                continue
            sentence = _POINTER.sub(r"\1", sentence).replace(URL_MARK, "")
        kept.append(sentence)
    body = " ".join(kept)
    body = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", body)).strip()
    if not re.search(r"[^\W_]", body):
        return None
    return prefix + body


_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,7}|#\d{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def _prose_pieces(markdown: str) -> list[tuple[str, bool]]:
    """``markdown`` cut into ``(text, is_prose)`` pieces: fenced blocks and inline code spans are not prose."""
    if "`" not in markdown and "~~~" not in markdown:  # no code (the pattern opens with "^", so it is slow to scan)
        return [(markdown, True)]
    pieces, last = [], 0
    for start, end in code_spans(markdown):
        pieces.append((markdown[last:start], True))
        pieces.append((markdown[start:end], False))
        last = end
    pieces.append((markdown[last:], True))
    return pieces


def unescape_entities(markdown: str) -> tuple[str, int]:
    """Decode HTML entities left in Markdown prose (``&quot;``, ``&amp;lt;`` escaped twice in the post, ...); code
    is left as written. Returns the text and the number of entities decoded."""
    count = 0

    def decode(match: re.Match) -> str:
        nonlocal count
        text = html.unescape(match.group(0))
        count += text != match.group(0)
        return text

    if "&" not in markdown:
        return markdown, 0
    text = "".join(_ENTITY.sub(decode, p) if prose else p for p, prose in _prose_pieces(markdown))
    return text, count


def _prune_markdown(markdown: str, counts: dict[str, int]) -> str:
    """Resolve link marks and bare URLs in Markdown prose (code untouched); see :func:`html_to_markdown`."""
    pieces = _prose_pieces(markdown)
    text = "".join(
        _URL.sub(lambda m: (counts.__setitem__("urls", counts["urls"] + 1), URL_MARK)[1], p) if prose else p
        for p, prose in pieces)
    if not any(m in text for m in _MARKS):
        return markdown
    out, fence = [], None  # the open fence's marker: a fence closes only on the same marker
    for line in text.split("\n"):
        opener = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is not None:
            if opener and opener.group(1).startswith(fence) and not line.strip().lstrip(fence[0]):
                fence = None
            out.append(line)
            continue
        if opener:
            fence = opener.group(1)
            out.append(line)
            continue
        pruned = _prune_line(line, counts)
        if pruned is not None:
            out.append(pruned)
    # a mark the rules above left (unbalanced fences in odd HTML) must not reach training text
    return _LEFT_MARKS.sub("", "\n".join(out))


_TRAILING_HEADING = re.compile(r"\n+[ \t]*(?:#{1,6}[ \t][^\n]*|\*\*[^*\n]{1,80}\*\*:?)\s*$")


def html_to_markdown(html: str, *, prune_links: bool = False) -> tuple[str, dict[str, int]]:
    """Convert a post's HTML to Markdown and count what was removed or kept.

    Code blocks (``<pre>``) become fenced blocks (with the ``lang-*`` class as info string), lists stay lists,
    links are replaced by their text, images and every other tag are dropped, entities are decoded. Runs of blank
    lines are collapsed and trailing spaces removed.

    With ``prune_links`` (Stack Exchange answers and question bodies; LIMA_RELEASE.md: "a paragraph that was only a
    link is gone whole", "only 1 of 400 responses has a URL in its prose"), links whose text would say nothing
    without the link go too, by these rules (code is never touched):

    1. a paragraph made only of links (and separators: ``,`` ``|`` "and") is removed, as is a "Source: <link>"
       line (a list item made of links is content, "- Sierra Nevada Kellerweis": only rules 2-3 apply to it);
    2. a link whose text is a URL, and a bare URL in the prose, are removed; a link whose text only points at
       its target (:data:`POINTER_TEXTS`: "here", "this table", "link", "source", ...; or ends in "here") is
       marked;
    3. what pointed at a removed link: a parenthesis holding it ("(see here)", "(http://...)") goes; a line left
       with at most 5 words, or at most 12 opening with "Source(s)", "Sourced from", "via", "More information",
       "See also", goes ("Sourced from http://theroasterspack.com/"); a sentence holding it goes when it has at
       most 20 words or a pointing word ("see", "visit", "read", "found", "available", "check out", ...: "For
       future reference you can always visit the Trappiste website here."); in a longer sentence that says more
       than where to look the link's text stays, unlinked, as LIMA kept link texts ("... the same 8 step process
       outlined here, but one step is added ..."), and a URL goes;
    4. a heading or bold line left last, with nothing under it ("**More Information**"), goes.

    Returns:
        ``(markdown, changes)`` where ``changes`` counts ``links`` and ``images`` removed and ``code_blocks`` and
        ``lists`` kept; with ``prune_links`` also ``link_paragraphs`` (rule 1), ``urls`` (bare URLs) and
        ``pointer_sentences`` (lines and sentences removed by rule 3).
    """
    empty = {"links": 0, "images": 0, "code_blocks": 0, "lists": 0}
    if prune_links:
        empty.update(link_paragraphs=0, urls=0, pointer_sentences=0)
    if not html:
        return "", empty
    changes = {name: len(pattern.findall(html)) for name, pattern in _COUNTED.items()}
    soup = BeautifulSoup(html, "lxml", element_classes={Tag: _Tag})
    if prune_links:
        changes.update(_prune_soup(soup), urls=0, pointer_sentences=0)
    markdown = _CONVERTER.convert_soup(soup)
    markdown = _BLANK_RUNS.sub("\n\n", _strip_trailing(markdown)).strip()
    if prune_links:
        markdown = _prune_markdown(markdown, changes)
        markdown = _TRAILING_HEADING.sub("", markdown)
        markdown = _BLANK_RUNS.sub("\n\n", _strip_trailing(markdown)).strip()
    return markdown, changes
