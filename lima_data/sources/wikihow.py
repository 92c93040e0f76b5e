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

The response is Markdown: the intro, then each method as a ``##`` heading and its steps as a numbered list (a
step's bold headline kept). Sections in ``prune`` are left out; links (text kept), images and videos always are.
The candidate's group is ``wikihow``; ``meta["category"]`` is its top-level category (one of ``top_categories``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError
from ..filters.clean import html_to_markdown
from . import ReaderStats
from .base import Shard, Source, csv_rows, peek_csv_header, peek_json_keys, peek_lines

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

_TITLE_SUFFIX = re.compile(r"\s*(?::\s*\d+\+?\s+[\w ]+?)?\s*(?:\(with Pictures\))?\s*(?:-\s*wikiHow)?\s*$", re.I)
_HOW_TO = re.compile(r"^\s*(?:\d+\s+(?:simple\s+|easy\s+)?ways\s+to|how\s+to)\s+", re.I)
_THIS_ARTICLE = re.compile(r"^This article\b", re.I)


def clean_title(title: str) -> str:
    """The bare task of a wikiHow title: ``"How to Grill Flank Steak: 15 Steps (with Pictures) - wikiHow"`` ->
    ``"Grill Flank Steak"``; ``"3 Ways to Grill Fish"`` -> ``"Grill Fish"``."""
    title = " ".join(title.split())
    title = _TITLE_SUFFIX.sub("", title)
    return _HOW_TO.sub("", title).strip()


def title_to_prompt(title: str) -> str:
    """LIMA's prompt: ``"How to Grill Flank Steak"`` -> ``"How to grill flank steak?"``.

    Title-cased words after the first are lower-cased; words with inner capitals or all capitals (``YouTube``,
    ``COVID``) are kept. Proper nouns written like ordinary words ("California") are lower-cased too.
    """
    task = clean_title(title)
    words = task.split()
    out = []
    for word in words:
        core = word.strip("()\"'.,:;")
        if core[:1].isupper() and core[1:].islower() or (len(core) == 1 and core.isupper() and core != "I"):
            word = word.replace(core, core.lower(), 1)
        out.append(word)
    text = " ".join(out).rstrip(".?!")
    return f"How to {text}?"


def slug(title: str) -> str:
    """wikiHow's URL slug of a title: ``"Grill Flank Steak"`` -> ``"Grill-Flank-Steak"``."""
    return re.sub(r"[^\w]+", "-", clean_title(title)).strip("-")


def top_category(categories: list[str], top: tuple[str, ...] = TOP_CATEGORIES) -> str:
    """The first of ``categories`` that is a top-level category; else the last one (the most general of a path);
    else ``""``."""
    lowered = {t.lower(): t for t in top}
    for category in categories:
        if category.strip().lower() in lowered:
            return lowered[category.strip().lower()]
    return categories[-1].strip() if categories else ""


def rewrite_intro(markdown: str) -> tuple[str, bool]:
    """LIMA: a leading "This article..." becomes "The following answer..."."""
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
    article" -> "The following answer"), ``top_categories`` (the 19 top-level categories).
    """

    name = SOURCE
    groups = ("wikihow",)
    methods = ("category", "random", "top")
    defaults = {
        "prune": ["references", "things_youll_need", "related_wikihows", "tips", "warnings"],
        "rewrite_this_article": True,
        "top_categories": list(TOP_CATEGORIES),
    }

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
        response = article["markdown"].strip()
        rewritten = False
        if self.settings["rewrite_this_article"]:
            response, rewritten = rewrite_intro(response)
        categories = article.get("categories") or []
        stats.count("articles")
        return Candidate(
            id=f"{SOURCE}/{article_slug}",
            source=SOURCE,
            domain=top_category(categories, tuple(self.settings["top_categories"])) or "(none)",
            prompt=title_to_prompt(title),
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
                "format": shard.kind,
            },
        )

    # -- formats -----------------------------------------------------------------------------------------------

    def _html(self, shard: Shard, stats: ReaderStats) -> Iterator[tuple[int | None, dict[str, Any]]]:
        from bs4 import BeautifulSoup

        try:
            text = shard.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(shard.path, f"cannot read: {exc.strerror}") from None
        soup = BeautifulSoup(text, "lxml")
        title_match = re.search(r'"wgTitle"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
        title = json.loads(f'"{title_match.group(1)}"') if title_match else (soup.title.string if soup.title else "")
        cats_match = re.search(r'"wgCategories"\s*:\s*(\[[^\]]*\])', text)
        categories = json.loads(cats_match.group(1)) if cats_match else [
            a.get_text(strip=True) for a in soup.select("#breadcrumb li a, .breadcrumbs a")
            if a.get_text(strip=True) != "Categories"]
        pruned = {cls for name in self.settings["prune"] for cls in SECTIONS.get(name, (name,))}
        for junk in soup.select("script, noscript, style, img, video, .mwimg, .video, sup.reference, "
                                ".wh_vote_container, .altblock, .clearall"):
            junk.decompose()
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
        markdown = article_markdown(intro, methods)
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
                methods[-1][1].append(f"**{headline}** {text}".strip() if headline else text)
            yield line, {"title": title, "markdown": article_markdown(intro, methods)}

    def _steps_csv(self, shard: Shard, stats: ReaderStats):
        for line, title, rows in self._grouped(shard, stats):
            steps = []
            for row in rows:
                heading = (row.get("heading") or "").strip()
                paragraph = " ".join((row.get("paragraph") or "").split())
                if heading and paragraph.startswith(heading):
                    paragraph = paragraph[len(heading):].strip()
                steps.append(f"**{heading}** {paragraph}".strip() if heading else paragraph)
            yield line, {"title": title, "markdown": article_markdown("", [("", steps)])}

    def _jsonl(self, shard: Shard, stats: ReaderStats):
        with open(shard.path, "rb") as fh:  # bytes: a line that is not UTF-8 is one malformed row
            for line, row in self.json_objects(fh, stats):
                category = row.get("category")
                categories = [category] if isinstance(category, str) else list(category or [])
                if len(categories) == 1 and ">" in categories[0]:  # "Food and Entertaining > Recipes > ..."
                    categories = [c.strip() for c in categories[0].split(">")][::-1]
                if row.get("methods"):
                    methods = [(m.get("title") or m.get("name") or "", [str(s) for s in m.get("steps", [])])
                               for m in row["methods"]]
                    markdown = article_markdown(row.get("intro") or "", methods)
                else:
                    markdown = str(row.get("text") or row.get("article") or row.get("body") or "")
                yield line, {"title": row.get("title") or "", "categories": categories, "markdown": markdown,
                             "url": row.get("url")}
