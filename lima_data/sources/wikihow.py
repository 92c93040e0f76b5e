"""wikiHow reader (LIMA section 2.1: "we sample 200 articles from wikiHow, sampling a category first (out of 19)
and then an article within it. We use the title as the prompt ("How to cook an omelet?") and the article's body as
the response. We replace the typical "This article..." beginning with "The following answer...", and apply a
number of preprocessing heuristics to prune links, images, and certain sections of the text.").

Formats (each file is one shard; the format is recognised by name and content):

- ``wikihow_html``: a saved wikiHow article page. Title from ``wgTitle``, categories from ``wgCategories`` (or the
  breadcrumbs), intro from ``#mf-section-0``, each ``div.section.steps`` a method / part with its numbered steps.
- ``wikihow_all_csv``: WikiHow-Dataset ``wikihowAll.csv`` (columns ``headline, title, text``), one article a row.
- ``wikihow_sep_csv``: WikiHow-Dataset ``wikihowSep.csv`` (``overview, headline, text, sectionLabel, title``), one
  step a row, rows of an article adjacent.
- ``wikihow_steps_csv``: the per-step layout ``title, heading, paragraph`` (a step's paragraph repeats its
  heading), rows of an article adjacent.
- ``wikihow_jsonl``: JSON lines with ``title`` and ``category`` (a string or a list, most specific first or a
  path), and the body as ``text`` (Markdown or plain) or ``methods``: ``[{"title", "steps": [str, ...]}]``, with an
  optional ``intro``.

The response is Markdown: the intro, then each method as a ``##`` heading and its steps as a numbered list of
plain ``1. `` lines (LIMA's release: the step's headline is not bold; ``bold_headlines`` keeps it bold); an
article with one unnamed method gets the heading ``unnamed_method``. Sections in ``prune`` are left out; links
(text kept), images and videos always are. Page debris is removed in every format (:func:`strip_debris`:
citation numbers and their reference pop-ups, reader polls, image tags, sentences naming wikiHow).
The prompt is "How to <task>?" (:func:`title_to_prompt`); ``meta["title_form"]`` says what the title was
(:func:`parse_title`), and the ``title_not_howto`` filter drops titles that are no how-to (listicles, noun
phrases with an SEO subtitle), so no prompt reads "How to 19 ...".
The candidate's group is ``wikihow``; ``meta["category"]`` is its top-level category (one of ``top_categories``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError, RecipeError
from ..files import csv_rows
from ..text import loads_json
from ..text.markup import html_to_markdown
from . import ReaderStats
from .base import Shard, Source, peek_csv_header, peek_json_keys, peek_lines

SOURCE = "wikihow"
LICENCE = "CC BY-NC-SA 3.0"

#: wikiHow's 19 top-level categories (LIMA: "sampling a category first (out of 19)").
TOP_CATEGORIES = (
    "Arts and Entertainment", "Cars & Other Vehicles", "Computers and Electronics", "Education and Communications",
    "Family Life", "Finance and Business", "Food and Entertaining", "Health", "Hobbies and Crafts",
    "Holidays and Traditions", "Home and Garden", "Personal Care and Style", "Pets and Animals",
    "Philosophy and Religion", "Relationships", "Sports and Fitness", "Travel", "Work World", "Youth",
)

#: Section names the HTML pages use (``div.section.<name>``) and what ``prune`` calls them.
SECTIONS = {
    "references": ("references", "sourcesandcitations"),
    "things_youll_need": ("thingsyoullneed",),
    "related_wikihows": ("relatedwikihows",),
    "tips": ("tips",),
    "warnings": ("warnings",),
    "ingredients": ("ingredients",),
}

_SITE_SUFFIX = re.compile(r"\s*(?:\(with pictures\)\s*)?(?:[-|]\s*wikiHow\s*)?$", re.I)
_STEPS_TAIL = re.compile(r"\s+in\s+\d+\+?\s+(?:[\w&-]+\s+){0,3}(?:steps|ways)$", re.I)
_HOW_TO = re.compile(r"\bhow\s+to\s+(?P<task>.+)$", re.I)  # .match: at the start; .search: anywhere
_WAYS_TO = re.compile(r"^(?:\d+\+?\s+)?(?:[A-Za-z-]+\s+){0,2}ways\s+to\s+(?P<task>.+)$", re.I)
_QUESTION = re.compile(r"^(?:why|what|when|where|which|who|whose|how|can|could|should|is|are|was|were|do|does|did|"
                       r"will|would|has|have)\b[^?]*\?", re.I)
_PRONOUN_END = re.compile(r"\b(?:it|them|this|these|those)\W*$", re.I)
#: First words of a bare title that mark a listicle or a noun phrase, not a task (ours).
_NOT_A_VERB = {"the", "a", "an", "all", "best", "top", "easy", "simple", "quick", "ultimate", "complete",
               "everything", "why", "what", "when", "where", "which", "who", "is", "are"}
_THIS_ARTICLE = re.compile(r"^This (?:wikiHow(?:\s+article)?|article)\b", re.I)

#: The forms :func:`parse_title` tells apart (``meta["title_form"]``; the ``title_not_howto`` filter keeps the
#: ones its recipe lists).
TITLE_FORMS = ("how_to", "ways_to", "task", "question", "listicle")


def _strip_site(title: str) -> str:
    return _SITE_SUFFIX.sub("", " ".join(title.split())).strip()


def parse_title(title: str) -> tuple[str, str]:
    """What a wikiHow title asks, as ``(form, text)``; ``text`` keeps the title's own case.

    Forms (rules ours, from the real titles in ../shared/data/wikihow): the site suffix (``" - wikiHow"``,
    ``"(with Pictures)"``) and SEO subtitles (``": 15 Steps"``, ``": Tips & Tricks"``, ``" in 14 Easy Steps"``)
    are dropped first, then

    - ``how_to``: ``"How to Thin Your Blood: Can Natural Remedies Help?"`` -> ``"Thin Your Blood"``; also a
      "how to" inside the title (``"Expert Advice on How to Get Stronger Wrists"``) or its subtitle, unless the
      task ends on a pronoun that points back at the title (``"Titanium Dioxide Explained: How to Mix and Use It"``
      is a ``listicle``);
    - ``ways_to``: ``"3 Easy Ways to Break Down Clay Soil Fast"``, ``"Simple Ways to Clean Painted Wood"`` ->
      the task after "to";
    - ``question``: a title that opens with a question (``"Why Do You Get Sleepy Around Someone You Love? 8
      Reasons"`` -> ``"Why Do You Get Sleepy Around Someone You Love?"``);
    - ``task``: a bare page name without a subtitle (``wgTitle`` of a saved page: ``"Grill Flank Steak"``);
    - ``listicle``: anything else: a title that starts with a number (``"19 Powerful Prayers for a Financial
      Miracle from God"``), an article or adjective (``"The Best ..."``), or a noun phrase with a subtitle
      (``"Angel Number 333: Meaning in Love"``; a page name with a subtitle cannot be told from a noun phrase
      without a part-of-speech tagger, so it is not guessed at). ``text`` is the cleaned title.
    """
    clean = _strip_site(title)
    if not re.match(r"how\s+to\b", clean, re.I):
        question = _QUESTION.match(clean)
        if question:
            return "question", question.group(0).strip()
    head, _, subtitle = (part.strip() for part in clean.partition(":"))
    match = _HOW_TO.match(head)
    if match and _task(match.group("task")):
        return "how_to", _task(match.group("task"))
    match = _WAYS_TO.match(head)
    if match and _task(match.group("task")):
        return "ways_to", _task(match.group("task"))
    for part in (head, subtitle):  # "Expert Advice on How to ...", "Kill Flying Termites: 3 Ways to ..."
        match = _HOW_TO.search(part)
        form = "how_to"
        if not match:
            match, form = _WAYS_TO.match(part), "ways_to"
        if match and _task(match.group("task")) and not _PRONOUN_END.search(match.group("task")):
            return form, _task(match.group("task"))
        if part is head and not subtitle and _looks_like_task(head):
            return "task", _task(head)
    return "listicle", clean


def _task(text: str) -> str:
    return _STEPS_TAIL.sub("", text).strip(" .?!")


def _looks_like_task(text: str) -> bool:
    words = text.split()
    return bool(words) and not words[0][:1].isdigit() and words[0].lower() not in _NOT_A_VERB


def clean_title(title: str) -> str:
    """The bare task of a wikiHow title: ``"How to Grill Flank Steak: 15 Steps (with Pictures) - wikiHow"`` ->
    ``"Grill Flank Steak"``; ``"3 Ways to Grill Fish"`` -> ``"Grill Fish"``; a title that is no how-to (see
    :func:`parse_title`) comes back cleaned of its site suffix only."""
    return parse_title(title)[1]


def _lower_words(text: str, case: str) -> str:
    if case == "lower":
        return text.lower()
    out = []
    for word in text.split():
        core = word.strip("()\"'.,:;")
        if core[:1].isupper() and core[1:].islower() or (len(core) == 1 and core.isupper() and core != "I"):
            word = word.replace(core, core.lower(), 1)
        out.append(word)
    return " ".join(out)


def title_to_prompt(title: str, case: str = "lower") -> str:
    """LIMA's prompt: ``"How to Grill Flank Steak"`` -> ``"How to grill flank steak?"``.

    ``case="lower"`` (LIMA's release: every prompt is lower case after "How", proper nouns too: "... on
    facebook?"); ``case="words"`` lower-cases title-cased words only and keeps words with inner or all capitals
    (``YouTube``, ``COVID``). A ``question`` title keeps its own words (first letter upper, the rest by ``case``);
    a ``listicle`` title becomes the cleaned title with a question mark, never "How to 19 ..." (the
    ``title_not_howto`` filter drops it).
    """
    form, text = parse_title(title)
    if form == "question":
        first, _, rest = text.partition(" ")
        return f"{first[:1].upper()}{first[1:].lower()} {_lower_words(rest, case)}".strip()
    if form == "listicle":
        return text.rstrip(".?!") + "?"
    return f"How to {_lower_words(text, case).rstrip('.?!')}?"


def slug(title: str) -> str:
    """wikiHow's URL slug of a title: ``"Grill Flank Steak"`` -> ``"Grill-Flank-Steak"``."""
    return re.sub(r"[^\w]+", "-", clean_title(title)).strip("-")


def _page_value(text: str) -> Any:
    """The JSON value of a page's ``mw.config`` setting (``"wgTitle": "..."``, ``"wgCategories": [...]``), or
    ``None`` where a damaged page holds no JSON there (a bad escape, nesting too deep to read)."""
    try:
        return loads_json(text)
    except json.JSONDecodeError:
        return None


def top_category(categories: list[str], top: tuple[str, ...] = TOP_CATEGORIES) -> str:
    """The first of ``categories`` that is a top-level category; else the last one (the most general of a path);
    else ``""``."""
    lowered = {t.lower(): t for t in top}
    for category in categories:
        if category.strip().lower() in lowered:
            return lowered[category.strip().lower()]
    return categories[-1].strip() if categories else ""


_DATE = r"\d{1,2}\s+[A-Z][a-z]+\.?\s+\d{4}\b\.?"
#: wikiHow's debris in text scraped from its pages (rules ours, from ../shared/data/wikihow): the reference
#: pop-up that follows a citation number ("[2] X Expert Source Bridgett Price Professional Cleaner Expert
#: Interview. 23 May 2019.", "X Trustworthy Source Mayo Clinic ... Go to source", "X Research source"), bare
#: citation numbers, reader polls and wiki / Markdown image tags. Each pattern opening with ``[ \t]*`` starts
#: only where a run of spaces starts (``(?<![ \t])``): the match is the same (what follows the run is never a
#: space), but a long run followed by no debris is tried once, not from each of its characters: 16,000 spaces
#: took 8.5 s, growing as the square (issue 15, found by fuzzing).
DEBRIS = {
    "citations": re.compile(
        r"(?<![ \t])[ \t]*(?:\[\d{1,3}\][ \t]*)?\bX\s+(?:"
        r"Trustworthy\s+Source\b[^\n]{0,400}?Go\s+to\s+source"
        r"|Expert\s+Source\b(?:[^\n]{0,200}?Expert\s+Interview\.\s*" + _DATE + r")?"
        r"|Research\s+source\b(?:[^\n]{0,160}?Personal\s+interview\.\s*" + _DATE + r")?)"
        r"|(?<![ \t])[ \t]*\[\d{1,3}\](?!\()", re.I),
    "polls": re.compile(r"(?<![ \t])[ \t]*Reader\s+Poll:[^\n]{0,600}?(?:\[?Take\s+Poll\]?|$)", re.I | re.M),
    "images": re.compile(r"(?<![ \t])[ \t]*(?:!\[[^\]\n]*\]\([^)\n]*\)|\[\[(?:Image|File):[^\]\n]*\]\]|\{\{[^}\n]*\}\}"
                         r"|\[Image:[^\]\n]*\]"
                         r"|\{\s*\"smallUrl\"[^{}]*\})", re.I),  # an inline icon's JSON (URL sizes, licence HTML)
    # a sentence that names the site ("This wikiHow article offers some ideas ...", "... a good wikiHow
    # article on the subject!"): site boilerplate, not part of the answer
    "site_sentences": re.compile(r"(?:^|(?<=[.!?][ \t])|(?<=[.!?]\*\*[ \t]))[^.!?\n]*\b(?i:wikihow)\b[^.!?\n]*[.!?]*",
                                 re.M),
}
_SPACE_BEFORE_PUNCT = re.compile(r"(?<![ \t])[ \t]+([.,;:!?])(?!\S)")


def strip_debris(text: str, kinds=tuple(DEBRIS)) -> tuple[str, dict[str, int]]:
    """Remove wikiHow's page debris (:data:`DEBRIS`, the ``kinds`` named) from an article's text; returns the
    text and how many of each kind were removed. Line structure (headings, list items) is kept; a line left empty
    by the removal is dropped, spaces before punctuation are closed up ("hands[7] X Expert ... 2021. . Try" ->
    "hands. Try")."""
    counts = dict.fromkeys(DEBRIS, 0)
    for kind in kinds:
        text, counts[kind] = DEBRIS[kind].subn("", text)
    if any(counts.values()):
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
        lines = [re.sub(r"(?<=\S)[ \t]{2,}(?=\S)", " ", line).rstrip() for line in text.split("\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(line for line in lines
                                                  if line.strip() or not line)).strip()
        text = re.sub(r"^(\d+\.|[*-]|#+)[ \t]*$\n?", "", text, flags=re.M)  # an item left without text
    return text, counts


def rewrite_intro(markdown: str) -> tuple[str, bool]:
    """LIMA: a leading "This article..." becomes "The following answer..." (so does wikiHow's own "This wikiHow
    [article] teaches you ...")."""
    new, n = _THIS_ARTICLE.subn("The following answer", markdown.lstrip(), count=1)
    return new, bool(n)


def _numbered(steps: list[str]) -> str:
    """Markdown numbered list; continuation lines indented under their item."""
    items = []
    for i, step in enumerate(steps, 1):
        lines = step.strip().splitlines()
        if not lines:
            continue
        marker = f"{i}. "
        items.append(marker + lines[0] + "".join("\n" + (" " * len(marker) + line if line else "") for line in lines[1:]))
    return "\n".join(items)


def article_markdown(intro: str, methods: list[tuple[str, list[str]]]) -> str:
    """Intro, then each ``(method title, steps)`` as a ``##`` heading over a numbered list."""
    parts = [intro.strip()] if intro.strip() else []
    for title, steps in methods:
        block = _numbered(steps)
        if not block:
            continue
        parts.append((f"## {title.strip()}\n\n" if title.strip() else "") + block)
    return "\n\n".join(parts)


class WikiHowSource(Source):
    """wikiHow articles from saved pages, the WikiHow-Dataset CSVs, per-step CSVs, or JSON lines.

    Reader settings: ``prune`` (sections left out: any of ``references``, ``things_youll_need``,
    ``related_wikihows``, ``tips``, ``warnings``, ``ingredients``), ``rewrite_this_article`` (LIMA's "This
    article" -> "The following answer"), ``top_categories`` (the 19 top-level categories), ``prompt_case``
    (``"lower"``: all lower case after "How", as LIMA's release; ``"words"``: keeps ``YouTube``, ``COVID``),
    ``bold_headlines`` (False: plain steps, as LIMA's release), ``unnamed_method`` (heading of a lone method
    without a name; ``""`` for none).
    """

    name = SOURCE
    groups = ("wikihow",)
    methods = ("category", "random", "top")
    defaults = {
        "prune": ["references", "things_youll_need", "related_wikihows", "tips", "warnings"],
        "rewrite_this_article": True,
        "top_categories": list(TOP_CATEGORIES),
        "prompt_case": "lower",
        "bold_headlines": False,
        "unnamed_method": "Steps",
    }

    def __init__(self, settings: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(settings, **kwargs)
        if self.settings["prompt_case"] not in ("lower", "words"):
            raise RecipeError(f"[sources.wikihow.reader]: prompt_case must be \"lower\" or \"words\", not "
                              f"{self.settings['prompt_case']!r}")

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        suffix = path.suffix.lower()
        kind = None
        if suffix in (".html", ".htm"):
            head = "\n".join(peek_lines(path, 400)).lower()
            if "wikihow" in head:
                kind = "wikihow_html"
        elif suffix == ".csv":
            header = {h.lower() for h in peek_csv_header(path)}
            if {"headline", "title", "text"} <= header and "sectionlabel" in header:
                kind = "wikihow_sep_csv"
            elif {"headline", "title", "text"} <= header:
                kind = "wikihow_all_csv"
            elif {"title", "heading", "paragraph"} <= header:
                kind = "wikihow_steps_csv"
        elif suffix in (".jsonl", ".ndjson", ".json"):
            keys = peek_json_keys(path)
            if {"title", "category"} <= keys and keys & {"text", "methods", "article", "body"}:
                kind = "wikihow_jsonl"
        return Shard(SOURCE, path, kind, path.stat().st_size) if kind else None

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        seen: set[str] = set()
        for shard in shards:
            shard_stats = stats(shard)
            readers = {
                "wikihow_html": self._html,
                "wikihow_all_csv": self._all_csv,
                "wikihow_sep_csv": self._sep_csv,
                "wikihow_steps_csv": self._steps_csv,
                "wikihow_jsonl": self._jsonl,
            }
            advance = progress(shard)
            for line, article in readers[shard.kind](shard, shard_stats):
                shard_stats.rows += 1
                candidate = self._candidate(shard, shard_stats, line, article, seen)
                if candidate is not None:
                    yield candidate
            if advance is not None:
                advance(shard.size)

    # -- one article -> candidate ------------------------------------------------------------------------------

    def _candidate(self, shard: Shard, stats: ReaderStats, line: int | None, article: dict[str, Any],
                   seen: set[str]) -> Candidate | None:
        title = (article.get("title") or "").strip()
        if not title:
            self.malformed(stats, line, "article without a title")
            return None
        article_slug = slug(title)
        if not article_slug:
            self.malformed(stats, line, f"title {title!r} has no words")
            return None
        if article_slug in seen:
            stats.count("duplicate_titles")
            return None
        seen.add(article_slug)
        response, rewritten = article["markdown"].strip(), False
        if self.settings["rewrite_this_article"]:  # before the debris: "This wikiHow teaches ..." is the intro
            response, rewritten = rewrite_intro(response)
        title_form, task = parse_title(title)
        about_the_site = "wikihow" in task.lower()  # "Edit a wikiHow Article": sentences naming the site stay
        response, removed = strip_debris(response, [k for k in DEBRIS if k != "site_sentences" or not about_the_site])
        for kind, n in removed.items():
            if n:
                stats.count(f"articles_with_{kind}_removed")
        categories = article.get("categories") or []
        stats.count("articles")
        return Candidate(
            id=f"{SOURCE}/{article_slug}",
            source=SOURCE,
            domain=top_category(categories, tuple(self.settings["top_categories"])) or "",
            prompt=title_to_prompt(title, self.settings["prompt_case"]),
            response=response,
            score=None,
            meta={
                "group": "wikihow",
                "title": clean_title(title),
                "category": top_category(categories, tuple(self.settings["top_categories"])),
                "categories": categories,
                "url": article.get("url") or f"https://www.wikihow.com/{article_slug}",
                "licence": LICENCE,
                "rewrote_this_article": rewritten,
                "title_form": title_form,
                "removed": {kind: n for kind, n in removed.items() if n},
                "format": shard.kind,
            },
        )

    def _step(self, headline: str, text: str) -> str:
        """One step: its headline (bold with ``bold_headlines``) then its text."""
        if not headline:
            return text
        return (f"**{headline}** {text}" if self.settings["bold_headlines"] else f"{headline} {text}").strip()

    def _article(self, intro: str, methods: list[tuple[str, list[str]]]) -> str:
        """:func:`article_markdown`; a lone method without a name gets the heading ``unnamed_method`` (LIMA's
        release: every article has ``## `` headings; a single-method article's is "Step")."""
        if len(methods) == 1 and not methods[0][0].strip() and self.settings["unnamed_method"]:
            methods = [(self.settings["unnamed_method"], methods[0][1])]
        return article_markdown(intro, methods)

    # -- formats -----------------------------------------------------------------------------------------------

    def _html(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int | None, dict[str, Any]]]:
        from bs4 import BeautifulSoup

        try:
            text = shard.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(shard.path, f"cannot read: {exc.strerror}") from None
        soup = BeautifulSoup(text, "lxml")
        title_match = re.search(r'"wgTitle"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        title = _page_value(f'"{title_match.group(1)}"') if title_match else None
        if not isinstance(title, str):  # no wgTitle, or one that is not a JSON string (a damaged page)
            title = soup.title.string if soup.title else ""
        cats_match = re.search(r'"wgCategories"\s*:\s*(\[[^\]]*\])', text)
        categories = _page_value(cats_match.group(1)) if cats_match else None
        if not isinstance(categories, list):
            categories = [a.get_text(strip=True) for a in soup.select("#breadcrumb li a, .breadcrumbs a")
                          if a.get_text(strip=True) != "Categories"]
        categories = [c for c in categories if isinstance(c, str)]
        pruned = {cls for name in self.settings["prune"] for cls in SECTIONS.get(name, (name,))}
        for junk in soup.select("script, noscript, style, img, video, .mwimg, .video, sup.reference, "
                                ".wh_vote_container, .altblock, .clearall"):
            junk.decompose()
        if not self.settings["bold_headlines"]:
            for headline in soup.select("div.step b.whb"):
                headline.unwrap()
        intro_node = soup.select_one("#mf-section-0")
        intro = html_to_markdown(str(intro_node))[0] if intro_node else ""
        methods = []
        for section in soup.select("div.section.steps"):
            heading = section.select_one(".mw-headline")
            steps = [html_to_markdown(str(step))[0] for step in section.select("div.step")]
            methods.append((heading.get_text(" ", strip=True) if heading else "", steps))
        if not methods:  # other page layouts: every step of the page, as one list
            methods.append(("", [html_to_markdown(str(step))[0] for step in soup.select("div.step, li.step")]))
        extra = []
        for name, classes in SECTIONS.items():
            if name in self.settings["prune"] or name == "ingredients":
                continue
            for cls in classes:
                node = soup.select_one(f"div.section.{cls} .section_text, div.section.{cls}")
                if node is not None:
                    extra.append(f"## {name.replace('_', ' ').capitalize()}\n\n" + html_to_markdown(str(node))[0])
                    break
        if "ingredients" not in pruned:
            node = soup.select_one("div.section.ingredients .section_text")
            if node is not None:
                intro = (intro + "\n\n## Ingredients\n\n" + html_to_markdown(str(node))[0]).strip()
        if not methods or not any(steps for _, steps in methods):
            self.malformed(stats, None, "no steps found (not a wikiHow article page?)")
            return
        markdown = self._article(intro, methods)
        if extra:
            markdown += "\n\n" + "\n\n".join(extra)
        canonical = soup.select_one('link[rel="canonical"]')
        yield None, {"title": title, "categories": categories, "markdown": markdown,
                     "url": canonical.get("href") if canonical else None}

    def _all_csv(self, shard: Shard, stats: ReaderStats):
        for line, row in csv_rows(shard.path):
            text = (row.get("text") or "").strip()
            if not text:
                self.malformed(stats, line, "row without text")
                continue
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n|\n", text) if p.strip()]
            yield line, {"title": row.get("title") or "", "markdown": "\n\n".join(paragraphs)}

    def _grouped(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int, str, list[dict[str, str]]]]:
        """Adjacent rows with the same title, as ``(first line, title, rows)``."""
        current: list[dict[str, str]] = []
        title, first = None, 0
        for line, row in csv_rows(shard.path):
            row_title = (row.get("title") or "").strip()
            if row_title != title and current:
                yield first, title, current
                current = []
            if not current:
                title, first = row_title, line
            current.append(row)
        if current:
            yield first, title, current

    def _sep_csv(self, shard: Shard, stats: ReaderStats):
        for line, title, rows in self._grouped(shard, stats):
            intro = (rows[0].get("overview") or "").strip()
            methods: list[tuple[str, list[str]]] = []
            for row in rows:
                label = (row.get("sectionlabel") or "").strip()
                headline = (row.get("headline") or "").strip()
                text = " ".join((row.get("text") or "").split())
                if not methods or methods[-1][0] != label:
                    methods.append((label, []))
                methods[-1][1].append(self._step(headline, text))
            yield line, {"title": title, "markdown": self._article(intro, methods)}

    def _steps_csv(self, shard: Shard, stats: ReaderStats):
        for line, title, rows in self._grouped(shard, stats):
            steps = []
            for row in rows:
                heading = (row.get("heading") or "").strip()
                paragraph = " ".join((row.get("paragraph") or "").split())
                if heading and paragraph.startswith(heading):
                    paragraph = paragraph[len(heading):].strip()
                steps.append(self._step(heading, paragraph))
            yield line, {"title": title, "markdown": self._article("", [("", steps)])}

    def _jsonl(self, shard: Shard, stats: ReaderStats):
        with open(shard.path, "rb") as fh:  # bytes: a line that is not UTF-8 is one malformed row
            for line, row in self.json_objects(fh, stats):
                try:
                    article = self._jsonl_article(row)
                except (TypeError, AttributeError, ValueError) as exc:  # a field of the wrong JSON type
                    self.malformed(stats, line, f"article row of the wrong shape ({exc})")
                    continue
                yield line, article

    def _jsonl_article(self, row: dict[str, Any]) -> dict[str, Any]:
        """One JSON-lines article row as the reader's article dict.

        Raises:
            TypeError, AttributeError, ValueError: a field has the wrong JSON type (``title`` not a string,
            ``methods`` not a list of objects, ...).
        """
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise TypeError(f"title is {type(title).__name__}, not a string")
        category = row.get("category")
        categories = [category] if isinstance(category, str) else list(category or [])
        categories = [c for c in categories if isinstance(c, str)]
        if len(categories) == 1 and ">" in categories[0]:  # "Food and Entertaining > Recipes > ..."
            categories = [c.strip() for c in categories[0].split(">")][::-1]
        if row.get("methods"):
            methods = [(str(m.get("title") or m.get("name") or ""), [str(s) for s in m.get("steps", [])])
                       for m in row["methods"]]
            markdown = self._article(str(row.get("intro") or ""), methods)
        else:
            markdown = str(row.get("text") or row.get("article") or row.get("body") or "")
        return {"title": title, "categories": categories, "markdown": markdown, "url": row.get("url")}
