"""html_to_markdown's fast path (lxml + our own markdownify walker) against the reference path (bs4 +
markdownify): equal on every real Stack Exchange body and wikiHow fragment, and on tricky constructs; what it does
not reproduce falls back."""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

import pytest

from lima_data.text import markup, markup_reference
from lima_data.text.markup import html_to_markdown

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_markdown  # noqa: E402  (the comparison and the mutations, shared with the benchmark)


@pytest.fixture(scope="module")
def bodies(se_dir, shared):
    """Every distinct Body of every real Posts.xml (plain and in the beer .7z) and the wikiHow fragments, as
    ``(post type, body)``."""
    rows = bench_markdown.real_bodies([se_dir])
    rows += [("", "wikihow", f) for f in bench_markdown.wikihow_fragments(shared / "wikihow" / "html_pages_2020")]
    seen, out = set(), []
    for _, kind, body in rows:
        if body not in seen:
            seen.add(body)
            out.append((kind, body))
    return out


def reference(html: str, prune_links: bool):
    """html_to_markdown with the fast path off."""
    fast, markup._FAST = markup._FAST, False
    try:
        return html_to_markdown(html, prune_links=prune_links)
    finally:
        markup._FAST = fast


def test_fast_path_is_on():
    # the versions it was verified against are the ones installed (else every call falls back, correct but slow)
    assert markup._FAST


@pytest.mark.parametrize("prune_links, step", [(True, 1), (False, 3)])
def test_fast_path_equals_the_reference_on_every_real_body(bodies, prune_links, step):
    """Every distinct real body with ``prune_links`` (as ``clean`` and ``prompt_choice`` call it), every third one
    without (the test's time; ``benchmarks/bench_markdown.py`` checks every body both ways)."""
    assert len(bodies) > 10000
    outcome, reasons = collections.Counter(), collections.Counter()
    for kind, body in bodies[::step]:
        result = bench_markdown.compare(body, prune_links)
        assert result is None or result[0] == "fallback", (body[:500], result)
        outcome[kind, result is None] += 1
        if result:
            reasons[result[1].split(":")[-1].strip()] += 1
    answers = outcome["2", True] + outcome["2", False]
    assert answers > 6000 / step and outcome["2", True] / answers > 0.99
    assert outcome["1", True] / (outcome["1", True] + outcome["1", False]) > 0.99
    assert outcome["wikihow", True] > 350 / step
    assert set(reasons) <= {"tag textarea"}, reasons  # the real bodies that fall back (wikiHow), and why


def test_mutated_real_bodies_are_equal_or_fall_back(bodies):
    rng = random.Random(15)
    sample = [b for k, b in bodies if k in ("1", "2")]
    outcome = bench_markdown.fuzz(rng.sample(sample, 400), 400, seed=15)
    assert outcome["DIFFERENT"] == 0
    assert outcome["fast"] > 600  # most mutations still take the fast path: the check above is not vacuous


def test_the_whole_call_is_the_same_with_the_fast_path(bodies):
    """html_to_markdown (counts and the Markdown after pruning) with and without the fast path."""
    for _, body in bodies[::40]:
        for prune in (True, False):
            assert html_to_markdown(body, prune_links=prune) == reference(body, prune)


TRICKY = {
    "nested lists, ol start, paragraphs in items": (
        '<ol start="3">\n<li>one</li>\n<li><p>two</p>\n<ul>\n<li>a\n<ul><li>deep</li></ul></li>\n</ul></li>\n</ol>\n'
        "<p>after</p>",
        "3. one\n4. two\n\n   - a\n     - deep\n\nafter"),
    "code with a language, blank lines and indentation kept": (
        '<pre class="lang-py prettyprint-override"><code>def f():\n\n    return  1\n</code></pre>',
        "```py\ndef f():\n\n    return  1\n```"),
    "inline code with backticks, emphasis with spaces": (
        "<p>Use <code>a`b</code> or <em> this </em><strong>bold</strong>.</p>",
        "Use `` a`b `` or  *this* **bold**."),  # markdownify keeps the space before and the one it chomped
    "nested blockquotes, br, entities, nbsp": (
        "<blockquote><p>quoted&nbsp;text<br>second &amp; line</p><blockquote><p>inner</p></blockquote></blockquote>",
        "> quoted\u00a0text\n> second & line\n>\n> > inner"),
    "headings, hr, sup/sub, strike and kbd": (
        "<h2>Title <br> here</h2><hr><p>x<sup>2</sup> H<sub>2</sub>O <strike>old</strike> <s>gone</s> "
        "<kbd>Ctrl</kbd></p>",
        "## Title here\n\n---\n\nx2 H2O old ~~gone~~ `Ctrl`"),
    "a comment between strings, CRLF and tabs": (
        "<p>a\r\n<!-- language: lang-js -->\tb  c</p>\r\n<ul><li>x</li></ul>",
        "a\n b c\n\n- x"),
    "a table with a head row, a column span and code in a cell": (
        '<table>\n<thead>\n<tr>\n<th>Roast</th>\n<th colspan="2">Brew</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n'
        "<td>light</td>\n<td><code>V60</code></td><td>4 min</td>\n</tr>\n</tbody>\n</table>",
        "| Roast | Brew | |\n| --- | --- | --- |\n| light | `V60` | 4 min |"),
    "an empty comment inside pre (kept, and false where markdownify tests a sibling)": (
        "<pre><blockquote>x\n<!----><h6>y</h6></blockquote></pre>", "```\n> x\n>\n> ###### y\n```"),
    "a processing instruction (libxml2 reads it as a comment)": ("<p>a<?php echo 1 ?>b</p>", "ab"),
    "links and images dropped, link inside code kept as text": (
        '<p>See <a href="http://a.org">the docs</a> <img src="x.png" alt="pic"> and '
        '<code><a href="u">f()</a></code></p>',
        "See the docs  and `f()`"),
}


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_constructs_take_the_fast_path(name):
    html, expected = TRICKY[name]
    fast = markup._fast_markdown(html, False)  # raises if it would fall back
    assert fast == markup_reference.reference_markdown(html, False)
    assert html_to_markdown(html)[0] == expected


def test_link_pruning_on_the_fast_path():
    html = ('<p>Roast it darker for espresso.</p><p><a href="http://x.org/a">Source</a></p>'
            '<p>More on grinders <a href="http://y.org">here</a>.</p><ul><li><a href="z">Kalita Wave</a></li></ul>'
            '<p>A long sentence that says much more than where to look, since the grind, the dose and the water '
            'all matter as <a href="http://w.org">this table</a> shows for every method people use.</p>')
    fast = markup._fast_markdown(html, True)
    assert fast == markup_reference.reference_markdown(html, True)
    assert fast[1] == {"link_paragraphs": 1}
    markdown, changes = html_to_markdown(html, prune_links=True)
    assert markdown == reference(html, True)[0]
    assert "Source" not in markdown and "grinders" not in markdown and "- Kalita Wave" in markdown
    assert changes["link_paragraphs"] == 1 and changes["pointer_sentences"] == 1 and changes["links"] == 4


@pytest.mark.parametrize("html, reason", [
    ("<p>x</p><script>var a = '<b>';</script>", "tag script"),
    ("<textarea>  a\n b</textarea>", "tag textarea"),
    ("<!DOCTYPE html><p>x</p>", "doctype"),
    ("<video src=a.mp4>clip</video>", "tag video"),
    ("<div>" * 250 + "x" + "</div>" * 250, "deep nesting"),  # markdownify's recursion decides (fails from ~330)
])
def test_what_the_fast_path_does_not_reproduce_falls_back(html, reason):
    with pytest.raises(markup._Fallback, match=reason):
        markup._fast_markdown(html, True)
    assert html_to_markdown(html, prune_links=True) == reference(html, True)


def test_html_markdownify_cannot_convert_is_made_convertible(bodies):
    """A post nested 400 tags deep, or with a list start "²", stopped the whole build (markdownify's
    RecursionError / ValueError): it converts now, as its content alone would."""
    answers = [b for kind, b in bodies if kind == "2" and len(b) > 1500][:20]
    assert len(answers) == 20
    for body in answers:
        for prune_links in (True, False):
            assert (html_to_markdown("<div>" * 400 + body + "</div>" * 400, prune_links=prune_links)
                    == html_to_markdown(body, prune_links=prune_links))
    assert html_to_markdown('<ol start="²"><li>one</li><li>two</li></ol>')[0] == "1. one\n2. two"
    assert "| x |" in html_to_markdown('<table><tr><td colspan="²">x</td></tr></table>')[0]
    deep, _ = html_to_markdown("<blockquote>" * 400 + "<p>quoted</p>" + "</blockquote>" * 400)
    assert deep.endswith("quoted") and deep.startswith("> > >")


def test_the_fast_path_knows_markdownifys_converters_without_importing_it():
    """The fast path decides which tags markdownify converts from a written-out list (so a build's start-up imports
    neither bs4 nor markdownify); it must be the installed markdownify's, which the fast path runs on."""
    assert markup._FAST
    converter = markup_reference._CONVERTER
    assert markup._MARKDOWNIFY_CONVERT_ATTRIBUTES == {a for a in dir(converter) if a.startswith("convert_")}


def test_converting_real_answers_on_the_fast_path_imports_neither_bs4_nor_markdownify(se_dir):
    """In a fresh interpreter: every coffee answer converts without importing bs4 or markdownify (the reference
    path's libraries, imported on its first call), and a post the fast path does not take imports them."""
    import subprocess

    code = (
        "import html, re, sys\n"
        "from lima_data.text.markup import html_to_markdown\n"
        "posts = open(sys.argv[1], encoding='utf-8').read()\n"
        "bodies = [html.unescape(b) for b in re.findall(r'PostTypeId=\"2\"[^>]* Body=\"([^\"]*)\"', posts)]\n"
        "for body in bodies:\n"
        "    html_to_markdown(body, prune_links=True)\n"
        "print(len(bodies), 'bs4' in sys.modules, 'markdownify' in sys.modules)\n"
        "html_to_markdown('<p>a</p><script>x</script>')\n"
        "print('bs4' in sys.modules, 'markdownify' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(se_dir / "coffee" / "Posts.xml")], check=True,
                         capture_output=True, text=True).stdout.split("\n")
    count, *before = out[0].split()
    assert int(count) > 300 and before == ["False", "False"]
    assert out[1].split() == ["True", "True"]
