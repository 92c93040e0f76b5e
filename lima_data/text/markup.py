"""HTML -> Markdown conversion of posts and articles, with the link pruning LIMA's cleaning needs: shared by the
sources (wikiHow pages are converted while they are read) and the filters (``clean`` converts Stack Exchange answers,
``prompt_choice`` question bodies), so it lives below both (DESIGN.md section 3, walls).

The reference conversion is BeautifulSoup (lxml builder) and markdownify 1.2.3
(:func:`lima_data.text.markup_reference.reference_markdown`, imported on first use: bs4 and markdownify stay out of a
build's start-up); what is ours is the pruning of links that only pointed somewhere
(:func:`html_to_markdown`'s rules), which no library does. Calls take a fast path (issue 15) that gives the same
``(markdown, changes)`` byte for byte, about 4x faster per call on real Stack Exchange answers: libxml2 fed as bs4
feeds it, with bs4's string rules, into a minimal tree (:func:`_parse`), the pruning on that tree
(:func:`_prune_tree`) and our own walker that follows markdownify's rules line by line (:func:`_walk`). It is our
own code because no library gives markdownify's output at that speed (bs4's tree and markdownify's generic
per-tag searches are the cost; the Rust ``html-to-markdown`` escapes dollar signs and a ``1)`` at a line start),
and changing the output would change every built set. What the walker does not reproduce exactly (``<script>``,
``<style>``, ``<textarea>``, ``<video>``, a doctype, nested links or list items removed twice by the pruning, other
bs4 or markdownify versions, any error) falls back to the reference path for the whole call. ``tests/test_markup.py``
and ``benchmarks/bench_markdown.py`` check both paths agree on every real body, and on random mutations of them.
"""

from __future__ import annotations

import html
import re
import threading

from lxml import etree

from . import code_spans

_BLANK_RUNS = re.compile(r"\n{3,}")


def _collapse_blank_runs(text: str) -> str:
    """Runs of 3 or more newlines as 2 (``_BLANK_RUNS.sub``, skipped when there is no run)."""
    return _BLANK_RUNS.sub("\n\n", text) if "\n\n\n" in text else text

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


def _parent_tag(node, names: tuple[str, ...]):
    """The nearest parent of ``node`` named one of ``names`` (``node.find_parent(list(names))``), or ``None``; for
    a bs4 tag and for the fast path's :class:`_Node` alike."""
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
#: (no mark inside: a post holding a run of U+E000 without U+E002 is then read once, not once per character)
_POINTER = re.compile("\ue000([^\ue000\ue002]*)\ue002")
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
        _URL.sub(lambda m: (counts.__setitem__("urls", counts["urls"] + 1), URL_MARK)[1], p)
        if prose and ("://" in p or "www." in p) else p  # (every _URL match holds one of the two)
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


# --- the fast path (see the module docstring) --------------------------------------------------------------------
#
# The same conversion as ``markup_reference.reference_markdown``: the same libxml2 parser fed the same way as bs4's
# lxml builder (``etree.HTMLParser(target=...)``), bs4's string rules (:class:`_Builder`), a minimal tree
# (:class:`_Node`), the same link pruning (:func:`_prune_tree`) and a walker (:func:`_walk`) that follows
# markdownify 1.2.3's ``process_tag`` / ``process_text`` / ``convert_*`` for the options of
# ``markup_reference._Converter``. Whatever it does not reproduce exactly raises :class:`_Fallback` (or any other
# error) and the whole call takes the reference path.


class _Fallback(Exception):
    """The fast path does not reproduce this input exactly: use the reference path for the whole call."""


def _versions_verified() -> bool:
    """The fast path copies the rules of bs4 4.15's lxml tree builder and of markdownify 1.2.3, the versions it was
    verified against (tests/test_markup.py): with others every call takes the reference path."""
    try:
        from importlib.metadata import version
        return version("markdownify") == "1.2.3" and version("beautifulsoup4").startswith("4.15.")
    except Exception:  # noqa: BLE001 - an unreadable version means "not verified"
        return False


_FAST = _versions_verified()


class _Comment(str):
    """An HTML comment in a :class:`_Node`'s children (bs4's ``Comment``: ignored by markdownify and ``.strings``,
    but a sibling all the same)."""

    __slots__ = ()


class _Node:
    """An element: ``name`` (lower case, as libxml2 reports it), ``attrs``, ``children`` (``_Node``, ``str`` for
    text, :class:`_Comment`), ``parent`` (``None`` at the root, or once removed), ``kind`` (its :class:`_Kind`)."""

    __slots__ = ("name", "attrs", "children", "parent", "kind")

    def __init__(self, name: str, attrs: dict, parent):
        self.name = name
        self.attrs = attrs
        self.children = []
        self.parent = parent
        self.kind = _KINDS.get(name) or _kind(name)  # raises _Fallback for a tag the walker does not reproduce


#: Deeper nesting takes the reference path: markdownify recurses about three frames a level and raises
#: RecursionError from about 330 levels, so the reference path first unwraps what lies deeper than this
#: (``markup_reference.make_convertible``), which the fast path does not reproduce.
_MAX_DEPTH = 200
_ASCII_SPACES = "\x20\x0a\x09\x0c\x0d"
#: bs4's HTML builder: strings inside these tags are other NavigableString classes (``.strings`` skips them).
_STRING_CONTAINERS = frozenset(("rt", "rp", "style", "script", "template"))
#: bs4 keeps whitespace-only strings inside these as they are.
_PRESERVE_WHITESPACE = frozenset(("pre", "textarea"))


class _Builder:
    """lxml parser target building :class:`_Node` trees with bs4's string rules (``BeautifulSoup.endData``):
    text between two events is one string; a string of ASCII spaces only, outside ``<pre>``/``<textarea>``,
    becomes ``"\\n"`` if it holds a newline, else ``" "``; comments are strings of their own."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.root = _Node("[document]", {}, None)
        self.stack = [self.root]
        self.data_parts = []
        self.preserve = 0
        self.links = []  # the <a> elements, in document order

    def _flush(self, cls=str):
        parts = self.data_parts
        if not parts:
            return
        text = "".join(parts)
        self.data_parts = []
        if not self.preserve and not text.strip(_ASCII_SPACES):
            text = "\n" if "\n" in text else " "
        self.stack[-1].children.append(cls(text) if cls is not str else text)

    def start(self, tag, attrib):
        if self.data_parts:
            self._flush()
        if tag in _STRING_CONTAINERS or tag[:1] == "{" or attrib and any(k[:1] == "{" for k in attrib):
            raise _Fallback(f"tag {tag}")  # bs4 makes other string classes, or namespaced names
        if len(self.stack) > _MAX_DEPTH:
            raise _Fallback("deep nesting")
        parent = self.stack[-1]
        node = _Node(tag, attrib, parent)  # lxml gives each element its own dict (read only here)
        parent.children.append(node)
        self.stack.append(node)
        if tag in _PRESERVE_WHITESPACE:
            self.preserve += 1
        elif tag == "a":
            self.links.append(node)

    def end(self, tag):
        if self.data_parts:
            self._flush()
        node = self.stack.pop()
        if node.name in _PRESERVE_WHITESPACE:
            self.preserve -= 1

    def data(self, data):
        self.data_parts.append(data)

    def comment(self, text):
        self._flush()
        self.data_parts.append(text)
        self._flush(_Comment)

    def pi(self, target, data):
        raise _Fallback("processing instruction")

    def doctype(self, *args):
        raise _Fallback("doctype")

    def close(self):
        self._flush()
        return self.root


def _parse(html: str) -> tuple[_Node, list[_Node]]:
    """``html`` parsed as ``BeautifulSoup(html, "lxml")`` parses it (one ``feed`` of the whole string to
    ``etree.HTMLParser(recover=True)``, a leading byte-order mark dropped): the root and its ``<a>`` elements."""
    if html[:1] == "\N{BYTE ORDER MARK}":
        html = html[1:]
    # One parser per thread, reused: lxml inspects a target's methods each time a parser is made (a fifth of the
    # time of a short post). A parse that raises leaves it out, so the next call makes a fresh one.
    parser, builder = getattr(_PARSERS, "parser", None) or (None, None)
    if parser is None:
        builder = _Builder()
        parser = etree.HTMLParser(target=builder, recover=True)
    _PARSERS.parser = None
    builder.reset()
    parser.feed(html)
    root = parser.close()
    if len(builder.stack) != 1:
        raise _Fallback("unbalanced events")
    _PARSERS.parser = parser, builder
    return root, builder.links


_PARSERS = threading.local()


# -- the tree queries markup_reference.prune_soup needs, on _Node trees


def _descendants(node, names):
    """The elements below ``node`` named one of ``names``, in document order."""
    out = []
    stack = list(reversed(node.children))
    while stack:
        el = stack.pop()
        if type(el) is _Node:
            if el.name in names:
                out.append(el)
            if el.children:
                stack.extend(reversed(el.children))
    return out


def _strings(node, skip: str | None = None):
    """bs4's ``node.strings``: the text strings below ``node`` in document order (no comments); with ``skip``,
    not those inside an element of that name."""
    out = []
    stack = list(reversed(node.children))
    while stack:
        el = stack.pop()
        t = type(el)
        if t is _Node:
            if el.children and el.name != skip:
                stack.extend(reversed(el.children))
        elif t is str:
            out.append(el)
    return out


def _attached(node, root) -> bool:
    while node.parent is not None:
        node = node.parent
    return node is root


def _remove(node, replacement=None):
    """``node.decompose()`` (no ``replacement``) or ``node.replace_with(replacement)``."""
    siblings = node.parent.children
    i = next(i for i, el in enumerate(siblings) if el is node)
    if replacement is None:
        del siblings[i]
    else:
        siblings[i] = replacement
    node.parent = None


#: A character that :data:`_LINK_FILLER` never removes: not in its class, not a letter of "and" / "or" in either case
#: (no other character matches those letters under ``re.I``: checked over every code point), not "&".
_NOT_FILLER = re.compile(r"[^\s,;:.|/\-\u2013\u2014()\[\]*&andorANDOR]")


def _prune_tree(root: _Node, links: list[_Node]) -> dict[str, int]:
    """``markup_reference.prune_soup`` on a :class:`_Node` tree, step for step (``links``: its ``<a>`` elements in
    document order, which :func:`_parse` collects)."""
    counts = {"link_paragraphs": 0}
    if not links:
        return counts
    blocks = {}
    for a in links:
        block = _parent_tag(a, ("p", "li", "dd", "dt"))
        if block is not None:
            blocks.setdefault(id(block), block)
    for block in blocks.values():
        if not _attached(block, root):
            raise _Fallback("nested link block")
        if block.name == "li" or _descendants(block, ("pre", "ul", "ol", "img", "blockquote")):
            continue
        rest = "".join(_strings(block, skip="a"))
        # (a character _LINK_FILLER cannot remove means some text is left: the substitution can be skipped)
        only_filler = _NOT_FILLER.search(rest) is None and not _LINK_FILLER.sub("", rest).strip()
        if only_filler or _SOURCE_LINE.match(rest.strip() + " ") and len(rest.split()) <= 4:
            _remove(block)
            counts["link_paragraphs"] += 1
    if counts["link_paragraphs"]:
        for item in _descendants(root, ("li",)):
            if not _attached(item, root):
                raise _Fallback("nested list item")
            if not "".join(t for s in _strings(item) if (t := s.strip())) and not _descendants(item, ("img", "pre")):
                _remove(item)
        for lst in _descendants(root, ("ul", "ol")):
            if not _attached(lst, root):
                raise _Fallback("nested list")
            if not _descendants(lst, ("li",)):
                _remove(lst)
        links = [a for a in links if _attached(a, root)]  # prune_soup searches the tree again
    for a in links:
        if not _attached(a, root):
            raise _Fallback("nested link")
        if _parent_tag(a, ("pre", "code")):
            continue
        text = " ".join(t for s in _strings(a) if (t := s.strip()))
        if text and (_URL_TEXT.fullmatch(text) or text == a.attrs.get("href")):
            _remove(a, URL_MARK)
        elif text.lower().strip(" .:!") in POINTER_TEXTS or re.search(r"\bhere\W*$", text, re.I):
            _remove(a, POINTER_MARK + text + POINTER_END)
    return counts


# -- the walker: markdownify 1.2.3's MarkdownConverter with markup_reference._Converter's options

_HEADING = re.compile(r"h(\d+)")
_NEWLINE_WHITESPACE = re.compile(r"[\t \r\n]*[\r\n][\t \r\n]*")
_WHITESPACE = re.compile(r"[\t ]+")
_ALL_WHITESPACE = re.compile(r"[\t \r\n]+")
_EXTRACT_NEWLINES = re.compile(r"^(\n*)((?:.*[^\n])?)(\n*)$", flags=re.DOTALL)
_LINE_WITH_CONTENT = re.compile(r"^(.*)", flags=re.MULTILINE)
_BACKTICKS = re.compile(r"`+")
_PRE_LSTRIP = re.compile(r"^[ \n]*\n")
_INSIDE_BLOCKS = frozenset(("p", "blockquote", "article", "div", "section", "ol", "ul", "li", "dl", "dt", "dd",
                            "table", "thead", "tbody", "tfoot", "tr", "td", "th"))
#: Tags markdownify converts (a ``convert_<name>`` method) that :func:`_walk` does not reproduce.
_UNSUPPORTED = frozenset(("video", "script", "style", "textarea", "template", "rt", "rp"))
_INLINE_MARKUP = {"b": "**", "strong": "**", "em": "*", "i": "*", "del": "~~", "s": "~~", "sub": "", "sup": ""}
_CODE = frozenset(("code", "kbd", "samp"))
_NOFORMAT = frozenset(("pre", "code", "kbd", "samp"))


#: What markdownify asks of ``parent_tags`` (the names of a node's ancestors, plus the pseudo-tags ``_inline``
#: below headings and table cells and ``_noformat`` below pre/code/kbd/samp), as bits.
_IN_PRE, _IN_LI, _IN_INLINE, _IN_NOFORMAT = 1, 2, 4, 8


class _Kind:
    """Per tag name: markdownify's dispatch (cached): remove whitespace inside / outside, heading level, etc."""

    __slots__ = ("inside", "outside", "heading", "adds", "convert")

    def __init__(self, name: str):
        match = _HEADING.match(name)
        self.heading = int(match.group(1)) if match else 0
        self.inside = bool(match) or name in _INSIDE_BLOCKS
        self.outside = self.inside or name == "pre"
        #: the bits this tag adds to its children's parent_tags
        self.adds = ((_IN_PRE if name == "pre" else 0) | (_IN_LI if name == "li" else 0)
                     | (_IN_INLINE if match or name in ("td", "th") else 0)
                     | (_IN_NOFORMAT if name in _NOFORMAT else 0))
        if match:
            self.convert = "h"
        elif name in ("a", "img"):  # the converter strips them: their text passes through
            self.convert = None
        elif name in _UNSUPPORTED or name.startswith("[") and name != "[document]":
            raise _Fallback(f"tag {name}")
        else:
            fn = "convert_%s" % re.sub(r"[\[\]:-]", "_", name)
            # markdownify takes any attribute of that name (even its own ``convert_fn_cache`` dict, for a
            # <fn_cache> tag): one that is not a method reproduced below falls back
            self.convert = fn if fn in _MARKDOWNIFY_CONVERT_ATTRIBUTES else None
            if self.convert is not None and self.convert not in _CONVERTERS:
                raise _Fallback(f"tag {name}")


_KINDS: dict[str, _Kind] = {}


def _kind(name: str) -> _Kind:
    kind = _KINDS.get(name)
    if kind is None:
        kind = _KINDS[name] = _Kind(name)  # raises _Fallback for an unsupported tag (not cached)
    return kind


def _outside(el) -> bool:
    """markdownify's ``should_remove_whitespace_outside(el)``."""
    return type(el) is _Node and el.kind.outside


def _chomp(text: str):
    prefix = " " if text and text[0] == " " else ""
    suffix = " " if text and text[-1] == " " else ""
    return prefix, suffix, text.strip()


def _content_sibling_after(node, index: int):
    """markdownify's ``_next_block_content_sibling``."""
    for el in node.parent.children[index + 1:]:
        t = type(el)
        if t is _Node or t is str and el.strip() != "":
            return el
    return None


def _convert(kind: _Kind, node: _Node, index: int, text: str, flags: int) -> str:
    """markdownify's ``convert_<name>(node, text, parent_tags)`` for ``node`` (child ``index`` of its parent;
    ``flags``: the ``_IN_*`` bits of ``parent_tags``)."""
    fn = kind.convert
    name = node.name
    if fn == "convert_p":
        if flags & _IN_INLINE:
            return " " + text.strip(" \t\r\n") + " "
        text = text.strip(" \t\r\n")
        return "\n\n%s\n\n" % text if text else ""
    if name in _INLINE_MARKUP or name in _CODE:  # markdownify's inline converters: chomped, not in code
        if flags & _IN_NOFORMAT:
            return text
        prefix, suffix, text = _chomp(text)
        if not text:
            return ""
        if name in _INLINE_MARKUP:
            markup = _INLINE_MARKUP[name]
            return "%s%s%s%s%s" % (prefix, markup, text, markup, suffix)
        max_backticks = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
        delimiter = "`" * (max_backticks + 1)
        if max_backticks > 0:
            text = " " + text + " "
        return "%s%s%s%s%s" % (prefix, delimiter, text, delimiter, suffix)
    if fn == "h":
        if flags & _IN_INLINE:
            return text
        n = max(1, min(6, kind.heading))
        text = _ALL_WHITESPACE.sub(" ", text.strip())
        return "\n\n%s %s\n\n" % ("#" * n, text)
    if fn == "convert_li":
        text = (text or "").strip()
        if not text:
            return "\n"
        parent = node.parent
        if parent is not None and parent.name == "ol":
            start = parent.attrs.get("start")
            start = int(start) if start and str(start).isnumeric() else 1
            before = sum(1 for el in parent.children[:index] if type(el) is _Node and el.name == "li")
            bullet = "%s. " % (start + before)
        else:
            bullet = "- "
        indent = " " * len(bullet)
        text = _LINE_WITH_CONTENT.sub(lambda m: indent + m.group(1) if m.group(1) else "", text)
        return "%s\n" % (bullet + text[len(bullet):])
    if fn == "convert_ul" or fn == "convert_ol":
        following = _content_sibling_after(node, index)
        before_paragraph = bool(following) and not (type(following) is _Node and following.name in ("ul", "ol"))
        if flags & _IN_LI:
            return "\n" + text.rstrip()
        return "\n\n" + text + ("\n" if before_paragraph else "")
    if fn == "convert_blockquote":
        text = (text or "").strip(" \t\r\n")
        if flags & _IN_INLINE:
            return " " + text + " "
        if not text:
            return "\n"
        text = _LINE_WITH_CONTENT.sub(lambda m: "> " + m.group(1) if m.group(1) else ">", text)
        return "\n" + text + "\n\n"
    if fn == "convert_pre":
        if not text:
            return ""
        language = ""
        for cls in (node.attrs.get("class") or "").split():
            if cls.startswith("lang-") and cls != "lang-none":
                language = cls[5:]
                break
        # rstrip: the same as markdownify's re.sub(r"[ \n]*$", "", ...), which retries from every character of a
        # long run of spaces not at the end (a <pre> of 20,000 spaces: 1 s, growing as the square; issue 15)
        text = _PRE_LSTRIP.sub("", text).rstrip(" \n")
        return "\n\n```%s\n%s\n```\n\n" % (language, text)
    if fn == "convert_br":
        if flags & _IN_INLINE:
            return text + " " if text else " "
        return "  \n" + text
    if fn == "convert_hr":
        return "\n\n---\n\n"
    if fn in ("convert_div", "convert_article", "convert_section", "convert_dl"):
        if flags & _IN_INLINE:
            return " " + text.strip() + " "
        text = text.strip()
        return "\n\n%s\n\n" % text if text else ""
    if fn == "convert_dd":
        text = (text or "").strip()
        if flags & _IN_INLINE:
            return " " + text + " "
        if not text:
            return "\n"
        text = _LINE_WITH_CONTENT.sub(lambda m: "    " + m.group(1) if m.group(1) else "", text)
        return "%s\n" % (":" + text[1:])
    if fn == "convert_dt":
        text = _ALL_WHITESPACE.sub(" ", (text or "").strip())
        if flags & _IN_INLINE:
            return " " + text + " "
        if not text:
            return "\n"
        return "\n\n%s\n" % text
    if fn == "convert_q":
        return '"' + text + '"'
    if fn == "convert_td" or fn == "convert_th":
        return " " + text.strip().replace("\n", " ") + " |" * _colspan(node)
    if fn == "convert_tr":
        return _table_row(node, text)
    if fn == "convert_table":
        return "\n\n" + text.strip() + "\n\n"
    if fn == "convert_caption":
        return text.strip() + "\n\n"
    if fn == "convert_figcaption":
        return "\n\n" + text.strip() + "\n\n"
    if fn == "convert__document_":
        return text.strip("\n")
    raise _Fallback(f"no converter for {name}")  # pragma: no cover - _Kind only lets the names above through


def _colspan(cell: _Node) -> int:
    """markdownify's column span of a ``<td>``/``<th>``."""
    span = cell.attrs.get("colspan")
    return max(1, min(1000, int(span))) if span is not None and span.isdigit() else 1


def _previous_tag(node: _Node):
    """bs4's ``node.find_previous_sibling()`` (tags only), or ``None``."""
    siblings = node.parent.children
    i = next(i for i, el in enumerate(siblings) if el is node)
    return next((el for el in reversed(siblings[:i]) if type(el) is _Node), None)


def _table_row(row: _Node, text: str) -> str:
    """markdownify's ``convert_tr`` (``table_infer_header`` off)."""
    cells = _descendants(row, ("td", "th"))
    parent = row.parent
    is_first_row = _previous_tag(row) is None
    is_headrow = (all(cell.name == "th" for cell in cells)
                  or parent.name == "thead" and len(_descendants(parent, ("tr",))) == 1)
    is_head_row_missing = (is_first_row and not parent.name == "tbody"
                           or is_first_row and parent.name == "tbody"
                           and len(_descendants(parent.parent, ("thead",))) < 1)
    overline = underline = ""
    full_colspan = sum(_colspan(cell) for cell in cells)
    if is_headrow and is_first_row:
        underline += "| " + " | ".join(["---"] * full_colspan) + " |" + "\n"
    elif is_head_row_missing or (is_first_row and (parent.name == "table" or (
            parent.name == "tbody" and not _previous_tag(parent)))):
        overline += "| " + " | ".join([""] * full_colspan) + " |" + "\n"
        overline += "| " + " | ".join(["---"] * full_colspan) + " |" + "\n"
    return overline + "|" + text + "\n" + underline


#: The markdownify ``convert_*`` methods :func:`_convert` reproduces.
#: The attributes of markdownify 1.2.3's converter (with ``markup_reference._Converter``'s options) whose names
#: start with ``convert_``: markdownify converts a tag ``<x>`` with the attribute ``convert_x`` when there is one,
#: whatever it is (even ``convert_fn_cache``, a dict). Written out so that the fast path needs neither markdownify
#: nor bs4 imported; ``tests/test_markup.py`` checks it against the installed version (the fast path runs only
#: on 1.2.3, :data:`_FAST`).
_MARKDOWNIFY_CONVERT_ATTRIBUTES = frozenset((
    "convert__document_", "convert_a", "convert_article", "convert_b", "convert_blockquote", "convert_br",
    "convert_caption", "convert_code", "convert_dd", "convert_del", "convert_div", "convert_dl", "convert_dt",
    "convert_em", "convert_figcaption", "convert_fn_cache", "convert_hN", "convert_hr", "convert_i", "convert_img",
    "convert_kbd", "convert_li", "convert_list", "convert_ol", "convert_p", "convert_pre", "convert_q", "convert_s",
    "convert_samp", "convert_script", "convert_section", "convert_soup", "convert_strong", "convert_style",
    "convert_sub", "convert_sup", "convert_table", "convert_td", "convert_th", "convert_tr", "convert_ul",
    "convert_video",
))
_CONVERTERS = frozenset(("convert_td", "convert_th", "convert_tr", "convert_table", "convert_caption",
                         "convert_figcaption", "convert_p", "convert_b", "convert_strong", "convert_em", "convert_i",
                         "convert_del", "convert_s", "convert_sub", "convert_sup", "convert_code", "convert_kbd",
                         "convert_samp", "convert_li", "convert_ul", "convert_ol", "convert_blockquote",
                         "convert_pre", "convert_br", "convert_hr", "convert_div", "convert_article",
                         "convert_section", "convert_dl", "convert_dd", "convert_dt", "convert_q",
                         "convert__document_"))


def _text(el: str, previous, following, parent_kind: _Kind, flags: int) -> str:
    """markdownify's ``process_text`` for string ``el`` between siblings ``previous`` and ``following`` (``None``
    at an end; markdownify tests them for truth, and an empty comment, kept inside ``<pre>``, is false)."""
    text = el
    if not flags & _IN_PRE:  # the substitutions only where they can change something
        if "\n" in text or "\r" in text:
            text = _NEWLINE_WHITESPACE.sub("\n", text)
        if "\t" in text or "  " in text:
            text = _WHITESPACE.sub(" ", text)
    if _outside(previous) or (parent_kind.inside and not previous):
        text = text.lstrip(" \t\r\n")
    if _outside(following) or (parent_kind.inside and not following):
        text = text.rstrip()
    return text


def _walk(node: _Node, index: int, flags: int) -> str:
    """markdownify's ``process_tag`` for ``node`` (child ``index`` of its parent; ``flags``: the ``_IN_*`` bits of
    its ``parent_tags``)."""
    kind = node.kind
    children = node.children
    last = len(children) - 1
    tags = flags | kind.adds
    strings = []
    for i, el in enumerate(children):
        t = type(el)
        if t is _Node:
            s = _walk(el, i, tags)
        elif t is _Comment:
            continue
        else:
            previous = children[i - 1] if i else None
            following = children[i + 1] if i < last else None
            if el.strip() == "":
                if kind.inside and (not previous or not following):
                    continue
                if _outside(previous) or _outside(following):
                    continue
            s = _text(el, previous, following, kind, tags)
        if s:
            strings.append(s)
    if not tags & _IN_PRE:
        collapsed = [""]
        for s in strings:
            if s[0] != "\n" and s[-1] != "\n":
                leading, content, trailing = "", s, ""
            else:
                leading, content, trailing = _EXTRACT_NEWLINES.match(s).groups()
            if collapsed[-1] and leading:
                previous = collapsed.pop()
                leading = "\n" * min(2, max(len(previous), len(leading)))
            collapsed.extend((leading, content, trailing))
        strings = collapsed
    text = "".join(strings)
    if kind.convert is not None:
        text = _convert(kind, node, index, text, flags)
    return text


def _fast_markdown(html: str, prune_links: bool) -> tuple[str, dict[str, int]]:
    """``markup_reference.reference_markdown`` by :func:`_parse`, :func:`_prune_tree` and :func:`_walk`; raises
    :class:`_Fallback` (or anything else) where it cannot promise the same result."""
    if not isinstance(html, str):
        raise _Fallback("not a str")  # bs4 decodes bytes itself
    root, links = _parse(html)
    counts = _prune_tree(root, links) if prune_links else {}
    return _walk(root, 0, 0), counts


_TRAILING_HEADING = re.compile(r"\n+[ \t]*(?:#{1,6}[ \t][^\n]*|\*\*[^*\n]{1,80}\*\*:?)\s*$")



def _may_end_in_heading(markdown: str) -> bool:
    """Whether :data:`_TRAILING_HEADING` can match (a cheap test that saves its scan of every line): its match is
    the last line holding anything but whitespace, after a newline, opening with ``#`` or ``**``."""
    text = markdown.rstrip()
    newline = text.rfind("\n")
    return newline >= 0 and text[newline + 1:].lstrip(" \t").startswith(("#", "**"))


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

    Two paths give the same result byte for byte: a fast one (libxml2 and our own walker, about 4x faster) and
    bs4 + markdownify, taken for the whole call where the fast one cannot promise that (the module docstring).

    Returns:
        ``(markdown, changes)`` where ``changes`` counts ``links`` and ``images`` removed and ``code_blocks`` and
        ``lists`` kept; with ``prune_links`` also ``link_paragraphs`` (rule 1), ``urls`` (bare URLs) and
        ``pointer_sentences`` (lines and sentences removed by rule 3).

    HTML that markdownify cannot convert as it is (tags nested deeper than its recursion reaches, a list
    ``start`` such as ``"²"``) is made convertible first (``markup_reference.make_convertible``), so one odd post
    never stops a build.

    Raises:
        TypeError: ``html`` is ``bytes`` (bs4's error on the reference path).
    """
    empty = {"links": 0, "images": 0, "code_blocks": 0, "lists": 0}
    if prune_links:
        empty.update(link_paragraphs=0, urls=0, pointer_sentences=0)
    if not html:
        return "", empty
    changes = {name: len(pattern.findall(html)) for name, pattern in _COUNTED.items()}
    converted = None
    if _FAST:
        try:
            converted = _fast_markdown(html, prune_links)
        except Exception:  # noqa: BLE001 - _Fallback, or anything the fast path did not foresee
            converted = None
    if converted is None:
        from .markup_reference import reference_markdown

        converted = reference_markdown(html, prune_links)
    markdown, counts = converted
    if prune_links:
        changes.update(counts, urls=0, pointer_sentences=0)
    markdown = _collapse_blank_runs(_strip_trailing(markdown)).strip()
    if prune_links:
        markdown = _prune_markdown(markdown, changes)
        if _may_end_in_heading(markdown):
            markdown = _TRAILING_HEADING.sub("", markdown)
        markdown = _collapse_blank_runs(_strip_trailing(markdown)).strip()
    return markdown, changes
