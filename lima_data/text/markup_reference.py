"""The reference HTML -> Markdown conversion: BeautifulSoup (lxml builder) and markdownify 1.2.3, with the link
pruning done on the soup (:func:`prune_soup`).

:func:`~lima_data.text.markup.html_to_markdown` takes its fast path for nearly every call (100% of the real answers
and questions in ../shared/data) and this one only where the fast path cannot promise the same bytes, so this
module, and with it bs4, soupsieve and markdownify, is imported on the first such call, not when a build starts
(issue 15: start-up imports only what is used). The tests and ``benchmarks/bench_markdown.py`` compare the two
paths on every real body.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter

from .markup import (
    _LINK_FILLER,
    _MAX_DEPTH,
    _SOURCE_LINE,
    _URL_TEXT,
    POINTER_END,
    POINTER_MARK,
    POINTER_TEXTS,
    URL_MARK,
    _parent_tag,
)


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
    """bs4's ``Tag`` (the class :func:`reference_markdown`'s soups are built of) with a cheaper ``find_parent`` for
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


def prune_soup(soup) -> dict[str, int]:
    """Links in the parsed HTML: a paragraph made only of links (or a "Source: <link>" line) is removed, a link whose
    text is a URL becomes ``URL_MARK``, a link whose text is a pointer (``POINTER_TEXTS``) becomes ``POINTER_MARK``
    (:mod:`lima_data.text.markup`); links inside code are left alone. Returns counts."""
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


def reference_markdown(html: str, prune_links: bool) -> tuple[str, dict[str, int]]:
    """The reference conversion (and the fast path's fallback): ``html`` parsed by BeautifulSoup's lxml builder,
    links pruned on the soup (:func:`prune_soup`) when ``prune_links``, converted by markdownify
    (:class:`_Converter`). Returns markdownify's output and the pruning counts (``{}`` without ``prune_links``)."""
    soup = BeautifulSoup(html, "lxml", element_classes={Tag: _Tag})
    counts = prune_soup(soup) if prune_links else {}
    try:
        return _CONVERTER.convert_soup(soup), counts
    except (RecursionError, ValueError):  # markdownify's limits: see make_convertible
        return _CONVERTER.convert_soup(make_convertible(soup)), counts


#: The most work :func:`make_convertible` gives bs4's ``unwrap``: tags x deepest nesting. Each unwrap walks up
#: the tag's ancestors (bs4 finds the next element that way), so unwrapping a chain of n nested tags takes ~n^2/2
#: steps: 10 MB of unclosed ``<b>`` (a million levels) ran for hours (issue 15, found by fuzzing whole builds).
#: 2,000,000 is ~1 s; a real answer nested 400 deep with 2,000 tags is 800,000.
MAX_UNWRAP_WORK = 2_000_000


_WRAPPERS = ["div", "span", "section", "article", "font", "center", "main", "aside"]


def make_convertible(soup):
    """Change, in place, what makes markdownify raise on a soup, and return the soup to convert: a ``start`` or
    ``colspan`` attribute that ``str.isdigit`` accepts but ``int`` does not (``<ol start="²">``: ``ValueError``)
    is removed, as if absent; a container that only wraps one other tag (``<div><div>...``) is unwrapped; tags
    still nested deeper than :data:`_MAX_DEPTH` are unwrapped too (their text and inner tags kept, one level up).
    So a post of 400 nested ``<div>`` converts (as its content alone would) instead of stopping the build with a
    ``RecursionError``. Where that unwrapping would cost more than :data:`MAX_UNWRAP_WORK` (tags x deepest
    nesting: a hostile post, e.g. a million unclosed ``<b>``), a new soup holding the post's text alone (all
    markup dropped) is returned instead, in time linear in the post's size."""
    tags, deepest = 0, 0
    stack = [(soup, 0)]
    while stack:  # (iterative: the tree is too deep for recursion)
        node, depth = stack.pop()
        for child in node.contents:
            if isinstance(child, Tag):
                tags += 1
                deepest = max(deepest, depth + 1)
                stack.append((child, depth + 1))
    if tags * deepest > MAX_UNWRAP_WORK:
        text = soup.get_text()
        soup = BeautifulSoup("", "lxml", element_classes={Tag: _Tag})
        soup.append(soup.new_string(text))
        return soup
    for tag in soup.find_all(True):
        for name in ("start", "colspan"):
            value = tag.get(name)
            if isinstance(value, str) and value.isdigit():
                try:
                    int(value)
                except ValueError:
                    del tag[name]
    for tag in soup.find_all(_WRAPPERS):  # a wrapper around one tag alone (<div><div>...) says nothing
        inner = [c for c in tag.contents if not (isinstance(c, str) and not c.strip())]
        if len(inner) == 1 and isinstance(inner[0], Tag):
            tag.unwrap()
    deep = []
    stack = [(soup, 0)]
    while stack:  # (iterative: the tree is too deep for recursion)
        node, depth = stack.pop()
        for child in node.contents:
            if isinstance(child, Tag):
                if depth >= _MAX_DEPTH:
                    deep.append(child)
                stack.append((child, depth + 1))
    for tag in reversed(deep):  # innermost first
        tag.unwrap()
    return soup
