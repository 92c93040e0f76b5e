"""HTML -> Markdown: the fast path of :func:`lima_data.text.markup.html_to_markdown` against the reference path
(bs4 + markdownify), on every real Stack Exchange body, plus random mutations of them.

For every ``Body`` of every row (questions and answers) of every ``Posts.xml`` under the given folders (default:
``../shared/data/stackexchange`` and ``lima_data/samples/stackexchange``; ``.7z`` archives are read through the
project's 7-Zip reader), and for ``prune_links`` False and True, the fast path's ``(markdown, counts)`` must equal
the reference's, or the fast path must fall back. Prints how many bodies take the fast path, the fall-back reasons,
the per-call time of both paths (ms per call, best of ``--rounds``, on the answers, with ``prune_links=True`` as
``clean`` calls it) and, with ``--fuzz N``, N random mutations checked the same way. With ``--against DIR`` the
whole ``html_to_markdown`` call (pruning and all) of this checkout is compared with another checkout's (e.g. the
commit before the fast path: ``git archive d8c991c | tar -x -C DIR``), run in a subprocess, on the real bodies and
``--fuzz`` mutations. Exits 1 on any difference.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_markdown.py [--fuzz 20000] [--rounds 3] [--against DIR] [FOLDER ...]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from lima_data.text import markup, markup_reference

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FOLDERS = [ROOT.parent / "shared" / "data" / "stackexchange", ROOT / "lima_data" / "samples" / "stackexchange"]


def _rows(stream):
    for _, el in etree.iterparse(stream, tag="row"):
        body = el.get("Body")
        if body:
            yield el.get("PostTypeId"), body
        el.clear()


def real_bodies(folders) -> list[tuple[str, str, str]]:
    """``(where, post type id, body)`` of every row with a Body, in every Posts.xml (plain or in a .7z) below
    ``folders``, sorted by path (deterministic)."""
    from lima_data.sources.stackexchange import sevenzip

    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.name == "Posts.xml":
                out += [(str(path), t, b) for t, b in _rows(str(path))]
            elif path.suffix == ".7z":
                members = [m.name for m in sevenzip.list_members(path) if Path(m.name).name == "Posts.xml"]
                for member in members:
                    with sevenzip.open_member(path, member, 1 << 31) as stream:
                        out += [(f"{path}:{member}", t, b) for t, b in _rows(stream)]
    return out


def wikihow_fragments(folder: Path) -> list[str]:
    """The HTML fragments the wikiHow reader converts (``str()`` of the intro, each step, each section, after its
    junk is removed; lima_data/sources/wikihow.py), from every page in ``folder``."""
    from bs4 import BeautifulSoup

    out = []
    for page in sorted(Path(folder).glob("*.html")):
        soup = BeautifulSoup(page.read_text(encoding="utf-8", errors="replace"), "lxml")
        for junk in soup.select("script, noscript, style, img, video, .mwimg, .video, sup.reference, "
                                ".wh_vote_container, .altblock, .clearall"):
            junk.decompose()
        out += [str(node) for node in soup.select("#mf-section-0, div.step, li.step, div.section .section_text, "
                                                  "div.section")]
    return out


def compare(html: str, prune_links: bool):
    """``None`` when the fast path agrees with the reference, ``("fallback", reason)`` when it falls back, or
    ``("DIFFERENT", detail)``."""
    try:
        fast = markup._fast_markdown(html, prune_links)
    except Exception as error:  # noqa: BLE001 - every fall-back, with its reason
        return "fallback", f"{type(error).__name__}: {str(error)[:60]}"
    try:
        reference = markup_reference.reference_markdown(html, prune_links)
    except Exception as error:  # noqa: BLE001 - the reference raised where the fast path did not
        return "DIFFERENT", f"reference raised {type(error).__name__}: {error}"
    if fast != reference:
        return "DIFFERENT", f"fast={fast!r}\nreference={reference!r}"
    return None


#: Pieces of markup inserted at random points (odd nesting, unclosed and stray tags).
SOUP = ["<p>", "</p>", "<li>", "</li>", "<ul>", "</ul>", "<ol start='2'>", "<ol start=x>", "</ol>", "<pre>", "</pre>",
        "<pre class='lang-js'>", "<code>", "</code>", "<a href='http://x.org/a'>", "<a href=u>here</a>", "</a>",
        "<br>", " ", "\n", "\n\n", "\t", "\r\n", "<!-- x -->", "<blockquote>", "</blockquote>", "<h3>", "</h3>",
        "<h1> ", "<em>", "</em>", "<strong>", "</strong>", "<dd>", "<dt>", "<dl>", "<div>", "</div>", "<span>",
        "&amp;", "&lt;b&gt;", "\u00a0", "\u2028", "\u3000", "<hr>", "<b>", "<i>", "<sup>", "</sup>", "<kbd>",
        "<img src=a alt=b>", "<s>", "<del>", "<q>", "<section>", "<article>", "<u>", "<small>", "<abbr>", "`", "**",
        "Source: ", "see ", "http://example.com/x ", "<p><a href='v'>link</a></p>", "<li></li>", "<p></p>",
        "<table>", "</table>", "<tr>", "</tr>", "<td>", "</td>", "<th>", "<td colspan=2>", "<th colspan='x'>",
        "<thead>", "</thead>", "<tbody>", "</tbody>", "<caption>", "<figure><figcaption>c</figcaption></figure>",
        "<samp>", "<tfoot>", "<h6>", "<h9>", "<ol start='0'>", "<ol start='\u00b2'>", "<!---->", "<o:p>", "<font>",
        "<center>", "<pre><br>", "</li><li>", "<dd>\n", "\u00a0\n\u00a0"]


def _insert_soup(s: str, r: random.Random) -> str:
    for _ in range(r.randint(1, 8)):
        at = r.randrange(len(s) + 1)
        s = s[:at] + r.choice(SOUP) + s[at:]
    return s


MUTATIONS = [
    lambda s, r: s[: r.randrange(len(s) + 1)],                                   # cut at a random point
    lambda s, r: s.replace("</p>", "", r.randint(1, 3)),                         # unclosed tags
    lambda s, r: s.replace("</li>", "").replace("</ul>", "", 1),
    lambda s, r: s.replace("<li>", "<li><ul><li>", 1).replace("</li>", "</li></ul></li>", 1),  # nested lists
    lambda s, r: "<blockquote>" + s + "</blockquote>" + "<blockquote><blockquote>" + s[:80] + "</blockquote>",
    lambda s, r: s.replace(" ", " &amp; ", 1).replace("e", "&eacute;", 2).replace("a", "&nbsp;", 1),
    lambda s, r: s.replace("\n", "\r\n"),
    lambda s, r: s.replace(" ", "\t", r.randint(1, 5)),
    lambda s, r: "  \n " + s + " \n\n  ",
    lambda s, r: s.replace("<p>", "<p><br><br/><br>  ", 1),
    lambda s, r: s.replace("<p>", "<p><em></em><strong> </strong><code></code><b>\n</b>", 1),
    lambda s, r: s.replace("<code>", "<a href='x'><code>", 1).replace("</code>", "</code></a>", 1),
    lambda s, r: s.replace("<code>", "<code><a href='http://x.org'>http://x.org</a> ", 1),
    lambda s, r: s.replace(" ", "\u00a0", r.randint(1, 4)).replace(".", ".\u2028", 1),
    lambda s, r: s.replace(" ", " \u3000 ", 1).replace(",", "\u200b,", 1),
    lambda s, r: s.replace("<p>", "<p><!-- c -->", 1).replace("</p>", "<!---->\n</p>", 1),
    lambda s, r: s.replace("<p>", '<ol start="3"><li>x</li><li><p>y</p></li></ol><p>', 1),
    lambda s, r: (s.replace("<pre>", '<pre class="lang-py prettyprint-override">', 1)
                  + "<pre><code>\n\n a  b\n</code></pre>"),
    lambda s, r: s.replace("<p>", "<p>Source: <a href='http://a.b'>here</a> ", 1),
    lambda s, r: ("<p><a href='u'>here</a></p>" + s
                  + "<p>See <a href='v'>this link</a>.</p><ul><li><a href=w>x</a></li></ul>"),
    lambda s, r: s.replace("<p>", "<h2>", 1).replace("</p>", "<br></h2>", 1),
    lambda s, r: s.replace("<p>", "<p><kbd>Ctrl</kbd>+<sup>2</sup><sub> x </sub><strike>y</strike><s>z</s>"
                                  "<del>w</del>", 1),
    lambda s, r: s.replace("<p>", "<div><span> a </span><p>", 1).replace("</p>", "</p></div>", 1),
    lambda s, r: s.replace("<p>", "<dl><dt> a </dt><dd><p>b</p></dd></dl><p>", 1),
    lambda s, r: s.replace("<p>", "<p><q>quoted</q> <i> x</i><img src='a.png' alt='b'>", 1),
    lambda s, r: s + "<table><tr><td>a</td></tr></table>",
    lambda s, r: (s.replace("<p>", "<table>\n<thead>\n<tr>\n<th>A</th>\n<th colspan=\"2\">B</th>\n</tr>\n</thead>\n"
                            "<tbody>\n<tr>\n<td>1</td>\n<td><code>x|y</code></td><td><p>p</p>\n</td>\n</tr>\n"
                            "<tr><td>3</td></tr></tbody>\n</table>\n<p>", 1)),
    lambda s, r: s.replace("<", " <", r.randint(1, 6)).replace(">", "> ", r.randint(1, 6)),
    lambda s, r: s.replace("<p>", "<p>```x``` `` ` ", 1),
    lambda s, r: s.replace("<p>", "<h7>", 1).replace("<p>", "<h0>", 1),
    lambda s, r: "\ufeff" + s,
    lambda s, r: s.replace("<p>", "<p><a href='x'><p>inner</p></a>", 1),
    lambda s, r: s.replace("<li>", "<li>\n\n", 2).replace("</li>", "\n \n</li>", 2),
    lambda s, r: _insert_soup(s, r),
    lambda s, r: "".join(r.choice(SOUP + ["word", " x. ", "Here"]) for _ in range(r.randint(1, 40))),  # soup alone
    lambda s, r: _insert_soup(_insert_soup(s, r), r),
    lambda s, r: s.replace("<hr>", "<hr/><hr>", 1).replace("<p>", "<p>&lt;p&gt;&#x27;&#0;&#xD800;", 1),
]


def fuzz(bodies: list[str], n: int, seed: int = 0, reasons: collections.Counter | None = None) -> collections.Counter:
    """``n`` random mutations (1-3 each) of random real bodies through :func:`compare` (both ``prune_links``):
    how many took the fast path, fell back (their reasons counted in ``reasons``) or were DIFFERENT (printed)."""
    rng = random.Random(seed)
    outcome = collections.Counter()
    for i in range(n):
        html = rng.choice(bodies)
        for _ in range(rng.randint(1, 3)):
            html = rng.choice(MUTATIONS)(html, rng)
        for prune in (False, True):
            result = compare(html, prune)
            outcome["fast" if result is None else result[0]] += 1
            if result and result[0] == "fallback" and reasons is not None:
                reasons[result[1]] += 1
            if result and result[0] == "DIFFERENT":
                print(f"DIFFERENT (fuzz {i}, prune_links={prune}): {html[:300]!r}\n{result[1][:2000]}")
    return outcome


def whole_calls(bodies: list[str]) -> list[str]:
    """``repr(html_to_markdown(body, prune_links=p))`` (or the error's name) for each body and p in (True, False)."""
    from lima_data.text.markup import html_to_markdown

    out = []
    for body in bodies:
        for prune in (True, False):
            try:
                out.append(repr(html_to_markdown(body, prune_links=prune)))
            except Exception as error:  # noqa: BLE001 - an error must be the same error
                out.append(f"raised {type(error).__name__}")
    return out


def against(checkout: Path, bodies: list[str]) -> int:
    """How many of :func:`whole_calls` differ between this checkout and ``checkout`` (printing the first few)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "bodies.json", Path(tmp) / "out.json"
        src.write_text(json.dumps(bodies))
        code = ("import json, sys; sys.path.insert(0, sys.argv[3]); from bench_markdown import whole_calls; "
                "json.dump(whole_calls(json.load(open(sys.argv[1]))), open(sys.argv[2], 'w'))")
        env = {**os.environ, "PYTHONPATH": str(Path(checkout).resolve())}
        subprocess.run([sys.executable, "-c", code, str(src), str(dst), str(Path(__file__).parent)], env=env,
                       check=True, cwd=tmp)
        theirs = json.loads(dst.read_text())
    ours = whole_calls(bodies)
    different = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    for i in different[:5]:
        print(f"DIFFERENT from {checkout} (prune_links={i % 2 == 0}): {bodies[i // 2][:300]!r}\n"
              f"  here:  {ours[i][:1000]}\n  there: {theirs[i][:1000]}")
    return len(different) + abs(len(ours) - len(theirs))


def per_call_ms(bodies: list[str], fn, rounds: int) -> float:
    """Best of ``rounds`` mean milliseconds of ``fn(body)`` over ``bodies``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for body in bodies:
            fn(body)
        best = min(best, time.perf_counter() - start)
    return best / len(bodies) * 1000


def _kind(post_type: str) -> str:
    return {"1": "question", "2": "answer", "wikihow": "wikiHow fragment"}.get(post_type, "other post")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, default=DEFAULT_FOLDERS)
    parser.add_argument("--fuzz", type=int, default=0, help="random mutations to check (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--against", type=Path, help="another checkout whose whole html_to_markdown calls must agree")
    args = parser.parse_args(argv)
    if not markup._FAST:
        print("the fast path is off (bs4 / markdownify versions not the verified ones)")
        return 1
    rows = real_bodies(args.folders)
    wikihow = ROOT.parent / "shared" / "data" / "wikihow" / "html_pages_2020"
    if wikihow.is_dir():
        rows += [(str(wikihow), "wikihow", fragment) for fragment in wikihow_fragments(wikihow)]
    different = 0
    for prune in (False, True):
        fast = collections.Counter()
        reasons = collections.Counter()
        for where, post_type, body in rows:
            result = compare(body, prune)
            kind = _kind(post_type)
            if result is None:
                fast[kind] += 1
            elif result[0] == "fallback":
                reasons[result[1]] += 1
            else:
                different += 1
                print(f"DIFFERENT ({where}, prune_links={prune}): {body[:300]!r}\n{result[1][:2000]}")
        totals = collections.Counter(_kind(t) for _, t, _ in rows)
        print(f"prune_links={prune}: {len(rows)} bodies; fast path: " + ", ".join(
            f"{kind}s {fast[kind]}/{totals[kind]} ({fast[kind] / totals[kind]:.1%})" for kind in sorted(totals)))
        print(f"  fell back: {sum(reasons.values())}; reasons: {reasons.most_common(8)}")
    if args.fuzz:
        reasons = collections.Counter()
        outcome = fuzz([b for _, t, b in rows if t in ("1", "2")], args.fuzz, reasons=reasons)
        different += outcome["DIFFERENT"]
        print(f"fuzz: {args.fuzz} mutated bodies x 2: {dict(outcome)}; fall-back reasons: {reasons.most_common(6)}")
    if args.against:
        bodies = [b for _, _, b in rows]
        rng = random.Random(1)
        for _ in range(args.fuzz):
            html = rng.choice(bodies)
            for _ in range(rng.randint(1, 3)):
                html = rng.choice(MUTATIONS)(html, rng)
            bodies.append(html)
        n = against(args.against, bodies)
        different += n
        print(f"whole html_to_markdown calls against {args.against}: {len(bodies)} bodies x 2, {n} different")
    if not args.no_timing:
        answers = [b for _, t, b in rows if t == "2"]
        old = per_call_ms(answers, lambda b: markup_reference.reference_markdown(b, True), args.rounds)
        new = per_call_ms(answers, lambda b: markup.html_to_markdown(b, prune_links=True), args.rounds)
        markup._FAST = False
        old_full = per_call_ms(answers, lambda b: markup.html_to_markdown(b, prune_links=True), args.rounds)
        markup._FAST = True
        print(f"per call on {len(answers)} real answers, prune_links=True, best of {args.rounds}: "
              f"html_to_markdown reference {old_full:.3f} ms, fast {new:.3f} ms ({old_full / new:.1f}x); "
              f"conversion alone (bs4 + markdownify) {old:.3f} ms")
    print("DIFFERENT:", different)
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
