"""The HTML report a curator reads (issue 14), on the full `lima` recipe built from ../shared/data: sections,
kept examples, plots, drops explained with the matched span, the before/after trace, labels, size, and a render
in headless Chromium when one is installed."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner
from rich.console import Console

import lima_data.report as report_module
from lima_data.build import build
from lima_data.candidate import Candidate
from lima_data.cli import main
from lima_data.files import read_zstd_jsonl
from lima_data.filters import build_filter
from lima_data.recipe import load_recipe
from lima_data.report import iter_rejects, print_report, rejects_by_source
from lima_data.report.html import REPORT_FILE, build_report, diff_marked, highlight


@pytest.fixture(scope="module")
def lima(tmp_path_factory, shared):
    """The full recipe over every real dump in ../shared/data, and its report with LIMA's slice as reference."""
    result = build(load_recipe("lima"), inputs=[shared], out_dir=tmp_path_factory.mktemp("manifests"), quiet=True)
    reference = shared / "lima" / "lima_train_slice.jsonl"
    report = build_report(result.path, reference=reference, examples=2)
    return result, report, BeautifulSoup(report.read_text(encoding="utf-8"), "html.parser")


def _rows(path, name):
    return [json.loads(line) for line in (path / name).read_text().splitlines()]


def test_navigation_summary_and_sections(lima):
    result, report, soup = lima
    toc = soup.find("nav", class_="toc")
    targets = [a["href"][1:] for a in toc.find_all("a")]
    assert all(soup.find(id=t) is not None for t in targets)  # every TOC entry lands somewhere
    assert targets[:2] == ["summary", "reference"]  # the reference comparison comes right after the summary
    for source, funnel in result.manifest["funnel"].items():
        assert soup.find("section", id=f"src-{source}") is not None
        row = soup.find("table", class_="summary").find("tr", attrs={"data-source": source})
        assert row.find_all("td")[1].text.replace(",", "") == str(funnel["candidates"])
        if funnel["candidates"]:  # one waterfall per source that read anything, counts written on the bars
            figure = soup.find("div", class_="funnel-figure", attrs={"data-source": source})
            assert f"{funnel['stages'][-1]['kept']:,}" in figure.get_text()
    top = soup.find("table", class_="summary").find("tr", attrs={"data-source": "stackexchange"})
    assert "answer_score: answer_score_too_low" in top.get_text()  # what was dropped most, and why
    groups = [g for g in result.manifest["selection"]["stackexchange"] if g["split"] == "train"]
    assert len(groups) == 2  # STEM and Other: one line for the train split, both groups added up
    assert (f"train {sum(g['selected'] for g in groups)}/{sum(g['wanted'] for g in groups)}"
            in top.find_all("td")[2].text)
    assert "beer.stackexchange.com" in top.find_all("td")[3].text  # from where


def test_kept_examples_are_every_selected_row_per_source_and_group(lima):
    result, _, soup = lima
    for source in result.manifest["funnel"]:
        section = soup.find("section", id=f"src-{source}")
        examples = section.find_all("details", class_="example")
        selected = sum(c["by_source"].get(source, 0) for c in result.manifest["counts"].values())
        assert len(examples) == selected
        for group in result.manifest["selection"].get(source, []):
            div = section.find("div", class_="group", attrs={"data-group": group["group"]})
            assert int(div["data-rows"]) == group["selected"]
    wikihow = soup.find("section", id="src-wikihow")
    assert wikihow.find("details", class_="more") is not None  # 182 rows: the first ones shown, the rest folded
    row = next(r for r in _rows(result.path, "train.jsonl") if r["source"] == "stackexchange")
    example = soup.find("details", class_="example", attrs={"data-id": row["id"]})
    values = example.find("table", class_="values").get_text()  # the measured value of every filter it passed
    assert all(f in values for f in ("first_person", "raw_length", "quality", "prompt_choice"))
    assert row["meta"]["url"] in example.get_text() and row["meta"]["licence"] in example.get_text()


def test_plots_are_kept_versus_dropped_with_units_and_thresholds(lima):
    _, _, soup = lima
    section = soup.find("section", id="src-stackexchange")
    card = section.find("div", class_="value", attrs={"data-filter": "raw_length"})
    text = card.get_text(" ")
    assert "min_chars = 1,200" in text and "characters" in text
    assert re.search(r"kept by this filter \(\d+\)", text) and re.search(r"dropped: too_short \(\d+\)", text)
    assert "e+0" not in str(soup)  # no scientific notation anywhere
    # categorical values (the site group) are a count table, not a plot
    table = section.find("div", class_="value", attrs={"data-filter": "site_group"}).find("table")
    assert "meta" in table.get_text()


def test_drops_are_explained_with_the_matched_span(lima):
    result, _, soup = lima
    rows = list(iter_rejects(result.path, filter_name="first_person"))
    assert rows and all(r["match"] for r in rows)
    flt = build_filter("first_person", result.manifest["recipe"]["sources"]["stackexchange"]["filters"]
                       ["first_person"], 0)
    for row in rows[:20]:
        assert {m["match"] for m in row["match"]} <= set(flt.words) | {w.lower() for w in flt.words} | {
            w.capitalize() for w in flt.words}
        assert len(row["match"]) == min(row["values"]["first_person"], 8)  # the same count measure made
    reason = soup.find(id="drop-stackexchange-first_person-first_person")
    first = reason.find("details", class_="reject")
    assert first.find("div", class_="match").find("mark").text in flt.words
    assert "<p>" not in first.get_text()  # the response is shown cleaned, not as the post's HTML
    site = next(iter_rejects(result.path, filter_name="site_reference"))
    assert {m["match"].lower() for m in site["match"]} == set(site["values"]["site_reference"])
    # repeated text (real answers and articles now pass; made candidates): the repeated n-gram / sentence marked
    settings = result.manifest["recipe"]["sources"]["stackexchange"]["filters"].get("quality", {})
    qf = build_filter("quality", settings, 0)
    filler = " ".join(f"plain{i} prose" for i in range(60))
    pasted = "Boil the water in a large pot before you add the pasta and the salt."
    candidate = Candidate("r", "stackexchange", "", "q", f"{pasted} {filler}. {pasted} More words here.")
    value = qf.measure(candidate)
    assert qf.decide(value) == "repeated_sentences"
    spans = qf.explain(candidate, value)
    assert [m["match"] for m in spans] == [pasted, pasted]
    looped = Candidate("g", "stackexchange", "", "q", " ".join(["the same words"] * 40 + [filler]))
    value = qf.measure(looped)
    assert qf.decide(value) == "repeated_ngrams"
    spans = qf.explain(looped, value)
    assert len(spans) >= 2 and len(spans[0]["match"].split()) >= 2  # a repeated n-gram, every time it occurs
    # leftover markup (the wikiHow reader now strips what used to leave it in real pages): the items counted
    qf = build_filter("quality", result.manifest["recipe"]["sources"]["wikihow"]["filters"].get("quality", {}), 0)
    words = " ".join(f"word{i} plain prose text" for i in range(30))
    text = f'{words} <div class="mw-parser-output"> and <a href="/x">a link</a> {words}'
    candidate = Candidate("z", "wikihow", "", "How to?", text)
    value = qf.measure(candidate)
    assert qf.decide(value) == "leftover_markup"
    spans = qf.explain(candidate, value)
    assert len(spans) == min(value["markup"], 8) and all(m["match"] in text for m in spans)


def test_explain_returns_the_spans_measure_counts():
    recipe = load_recipe("lima")
    settings = recipe.sources["stackexchange"].filters
    flt = build_filter("self_contained", settings["self_contained"], 0)
    candidate = Candidate("x", "stackexchange", "s", "How do I fix this code?", "", meta={"title":
                                                                                           "How do I fix this code?"})
    value = flt.measure(candidate)
    assert value == "this code" and flt.explain(candidate, value)[0]["match"] == "this code"
    first = build_filter("first_person", settings["first_person"], 0)
    answer = Candidate("y", "stackexchange", "s", "q", "<p>In my view it works. I tested it. Use $I$ here.</p>",
                       meta={"response_format": "html"})
    value = first.measure(answer)
    spans = first.explain(answer, value)
    assert [s["match"] for s in spans][:2] == ["my", "I"] and len(spans) == value


def test_terminal_and_html_show_the_same_examples_per_reason(lima):
    result, _, soup = lima
    buffer = io.StringIO()
    print_report(result.path, Console(file=buffer, width=200), examples=2)
    terminal = buffer.getvalue()
    for reason in soup.find_all("div", class_="reason"):
        ids = [d.find("span", class_="id").text for d in reason.find_all("details", class_="reject")]
        assert len(ids) <= 2
        for i in ids:
            assert i in terminal
    # grouped per source: a reason shared by two sources has one heading per source
    assert soup.find(id="drop-stackexchange-length-too_short") and soup.find(id="drop-wikihow-length-too_long")


def test_examples_per_reason_read_from_the_head_of_the_rejects_files(lima, monkeypatch):
    result, _, _ = lima
    everything = rejects_by_source(result.path, 2)  # every rejects file read to its end
    total = sum(1 for _ in iter_rejects(result.path))
    read = Counter()
    original = report_module.read_zstd_jsonl

    def counting(file):
        for row in original(file):
            read[file.name] += 1
            yield row

    monkeypatch.setattr(report_module, "read_zstd_jsonl", counting)
    shown = rejects_by_source(result.path, 2, result.manifest)
    counted = {(source, stage["filter"], reason): n for source, funnel in result.manifest["funnel"].items()
               for stage in funnel["stages"] for reason, n in stage["dropped"].items() if n}
    assert {k: everything.get(k) for k in counted} == {k: shown.get(k) for k in counted}  # the same rows shown
    assert all(len(shown[k]) == min(2, n) for k, n in counted.items() if k in everything)
    assert 0 < sum(read.values()) < total / 10  # most rows are never parsed


def test_report_files_read_back_what_json_reads(tmp_path):
    """The report's rows are parsed by orjson; what orjson refuses (NaN, integers beyond 64 bits, lone surrogate
    escapes) still reads as ``json`` reads it, and a damaged row is named by its number."""
    import zstandard

    from lima_data.errors import InputError
    from lima_data.files import read_zstd_jsonl

    lines = ['{"id":"a","values":{"length":1200}}', '{"id":"b","values":{"ratio":NaN}}',
             '{"id":"c","values":{"score":123456789012345678901234567890}}', '{"id":"\\ud800x","values":{}}', '',
             '{"id":"é","values":{"f":0.1}}']
    file = tmp_path / "rows.jsonl.zst"
    file.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode("utf-8")))
    assert list(map(repr, read_zstd_jsonl(file))) == [repr(json.loads(line)) for line in lines if line]
    file.write_bytes(zstandard.ZstdCompressor().compress(b'{"id":"a"}\n{"id":"b"}\n{"id":\n'))
    with pytest.raises(InputError, match=":3: damaged row"):
        list(read_zstd_jsonl(file))


def test_trace_marks_what_the_transforming_steps_changed(lima):
    _, _, soup = lima
    trace = soup.find("section", id="trace")
    headings = [h.get_text(" ", strip=True) for h in trace.find_all("h3")]
    assert any(h.startswith("stackexchange · clean") for h in headings)
    assert any(h.startswith("stackexchange · prompt_choice") for h in headings)
    first = trace.find("details", class_="traced")
    assert first.find("del") is not None and first.find("ins") is not None
    before, after = diff_marked("Call 555-123-4567 today", "Call [PHONE] today")
    assert "<del>555-123-4567</del>" in before and "<ins>[PHONE]</ins>" in after
    assert str(highlight("a <b> I x", ["I"])) == "a &lt;b&gt; <mark>I</mark> x"


def test_labels(lima):
    result, _, soup = lima
    wikihow = soup.find("section", id="src-wikihow").find("table", class_="quotas").get_text()
    assert "(no category):" in wikihow and "; :" not in wikihow and not wikihow.strip().startswith(":")
    composition = soup.find("table", class_="composition")
    authored = next(tr for tr in composition.find_all("tr") if tr.td and tr.td.text == "authored")
    assert "authors 5, multi_turn 5" in authored.get_text()  # GAIR's labels counted under the source they feed
    assert authored.find_all("td")[3].text == "10"
    dedup = soup.find("section", id="dedup").get_text()
    assert "None" not in dedup


def test_report_size_and_same_report_from_build_and_report(lima, tmp_path, shared):
    result, report, _ = lima
    assert report.stat().st_size < 10 * 2**20  # the full recipe's report stays under 10 MB
    runner = CliRunner()
    out = tmp_path / "m"
    out_option = next(p.opts[0] for p in main.commands["build"].params if p.name in ("out_dir", "output"))
    built = runner.invoke(main, ["build", "--input", str(shared / "lima"), "--recipe", "lima", "--sources",
                                 "authored", out_option, str(out), "-q"])
    assert built.exit_code == 0, built.output
    written = out / "lima" / "report" / REPORT_FILE
    first = written.read_text()
    assert 'id="lengths"' in first  # without a reference, the selected rows' lengths come after the summary
    assert runner.invoke(main, ["report", str(out / "lima"), "--examples", "3"]).exit_code == 0
    strip = lambda html: re.sub(r"report generated [^.]*\.", "", html)  # noqa: E731
    assert strip(written.read_text()) == strip(first)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no headless Chromium on this machine")
def test_renders_in_headless_chromium(lima):
    result, report, _ = lima
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    dom = subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    soup = BeautifulSoup(dom, "html.parser")
    for section in ("summary", "reference", "trace", "dedup", "timings"):
        assert soup.find("section", id=section) is not None
    kept = Counter(d.find_parent("section", class_="source")["id"] for d in soup.find_all("details",
                                                                                          class_="example"))
    selected = {f"src-{s}": sum(c["by_source"].get(s, 0) for c in result.manifest["counts"].values())
                for s in result.manifest["funnel"]}
    assert {k: v for k, v in selected.items() if v} == dict(kept)
    assert len(soup.find_all("svg")) >= len(result.manifest["funnel"])


def test_the_cli_starts_without_matplotlib():
    code = ("import sys, lima_data.cli, lima_data.report, lima_data.report.html, lima_data.build; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# --- issue 15 (the report's share of a build's time): the faster paths give what the slower ones gave ---


def _real_series(path):
    """Real measured values of the lima fixture's build: ``(unit, kept, dropped by reason, thresholds)`` per
    measured number with at least 3 distinct values, as the report plots them."""
    import numpy as np

    from lima_data.report.html import _effective_settings, _read_measurements, thresholds_for, unit_for

    numbers, _, _ = _read_measurements(path, set())
    manifest = json.loads((path / "manifest.json").read_text())
    out = []
    for (source, filter_name, key), (kept, by_reason) in sorted(numbers.items(), key=str):
        values = np.concatenate([np.frombuffer(kept)] + [np.frombuffer(v) for v in by_reason.values()])
        if np.unique(values).size >= 3:
            out.append((unit_for(filter_name, key), np.frombuffer(kept),
                        {r: np.frombuffer(v) for r, v in by_reason.items()},
                        thresholds_for(_effective_settings(manifest, source, filter_name), key)))
    return out


def test_reused_figures_draw_what_new_figures_draw(lima):
    """The plots reuse one figure per kind (plots._figure): a plot's SVG is the same bytes on a new figure, after
    every other real plot (log and linear axes, log y, thresholds, several drop reasons) and in reverse order."""
    from lima_data.report import plots

    result, _, _ = lima
    series = _real_series(result.path)
    lengths = np.array([len(m["content"]) for name in ("train.jsonl", "test.jsonl")
                        for r in _rows(result.path, name) for m in r["messages"]], dtype=float)
    assert plots.wants_log(lengths)  # the selected rows' message lengths: a log x axis
    series.append(("characters", lengths[lengths >= 1200], {"too_short": lengths[lengths < 1200]},
                   [("min_chars", 1200.0), ("max_chars", 8000.0)]))
    assert len(series) >= 10
    funnel = [("read", 2999, 2999), ("site_group: meta_site", 2999, 1832), ("selected", 23, 23)]
    lengths = [("prompt", {"ours (3)": [120, 480, 2200]}), ("response", {"ours (3)": []})]

    def draw(kind, i):
        if kind == "funnel":
            return plots.funnel_svg(funnel)
        if kind == "lengths":
            return plots.lengths_svg(lengths)
        unit, kept, dropped, thresholds = series[i]
        return plots.histogram_svg(kept, dropped, unit=unit, thresholds=thresholds)

    jobs = [("funnel", 0), ("lengths", 0)] + [("histogram", i) for i in range(len(series))]
    fresh = {}
    for job in jobs:
        plots._CANVASES.__dict__.clear()  # a new figure for each plot
        fresh[job] = draw(*job)
    plots._CANVASES.__dict__.clear()
    assert {job: draw(*job) for job in jobs} == fresh
    assert {job: draw(*job) for job in reversed(jobs)} == fresh


def test_funnel_and_lengths_layout_keeps_every_label_inside_the_figure(lima):
    """Funnel and lengths figures are laid out in one pass (plots._place) instead of the constrained layout: every
    label (stage names of any length, tick labels, axis labels, titles, legend) lies inside the figure and the
    panels do not overlap; the funnel's long axis label is no longer cut at the right edge."""
    from lima_data.report import plots

    result, _, _ = lima
    stages = [("read", 2999, 2999), ("answer_score: answer_score_too_low +1", 2999, 321),
              ("a_much_longer_filter_name: with_a_long_drop_reason +3", 321, 30), ("selected", 23, 23)]
    rows = [json.loads(line) for line in (result.path / "train.jsonl").read_text().splitlines()]
    prompts = [len(r["messages"][0]["content"]) for r in rows]
    responses = [len(r["messages"][1]["content"]) for r in rows]
    for kind, svg in (("funnel", lambda: plots.funnel_svg(stages)), ("funnel", lambda: plots.funnel_svg(stages[:1])),
                      ("lengths", lambda: plots.lengths_svg([("prompt", {"ours": prompts}),
                                                             ("response", {"ours": responses})]))):
        svg()
        fig, axes = plots._CANVASES.figures[(kind, 2 if kind == "lengths" else 1)]
        from matplotlib.backends.backend_svg import RendererSVG

        dpi, fig.dpi = fig.dpi, 72  # measured as the SVG writer measures (print_svg), in points
        try:
            renderer = RendererSVG(fig.bbox.width, fig.bbox.height, io.StringIO())
            fig.draw(renderer)
            inside = fig.bbox.padded(0.5)  # what is drawn: tick labels, axis labels, titles, texts, legends
            boxes = [ax.get_tightbbox(renderer) for ax in axes] + [g.get_window_extent(renderer) for g in fig.legends]
        finally:
            fig.dpi = dpi
        for box in boxes:
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, (
                kind, box, inside)
        if len(axes) == 2:
            assert axes[0].get_position().x1 < axes[1].get_position().x0


def test_word_matcher_gives_difflib_opcodes(lima):
    """diff_marked's matcher gives difflib's own opcodes (SequenceMatcher(autojunk=False)), on every real trace
    and on random word lists of few distinct words (many ties)."""
    import difflib
    import random

    from lima_data.report.html import _WordMatcher

    result, _, _ = lima
    rows = list(read_zstd_jsonl(result.path / "report" / "trace.jsonl.zst"))
    assert len(rows) >= 10
    pairs = [(re.findall(r"\s+|[^\s]+", r["before"]), re.findall(r"\s+|[^\s]+", r["after"])) for r in rows]
    rng = random.Random(15)
    for _ in range(1500):
        words = "abcdefgh"[:rng.choice([2, 3, 8])]
        a = [rng.choice(words) for _ in range(rng.randint(0, 40))]
        b = list(a) if rng.random() < 0.5 else [rng.choice(words) for _ in range(rng.randint(0, 40))]
        for _ in range(rng.randint(0, 4)):
            if b:
                b[rng.randrange(len(b))] = rng.choice("xy" + words)
        pairs.append((a, b))
    for a, b in pairs:
        assert _WordMatcher(a, b).get_opcodes() == difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()


def test_pruned_sections_read_with_lxml_as_beautifulsoup_reads_them(shared):
    """The pruning trace finds the pruned sections of a saved wikiHow page with lxml (html._sections,
    html._strings): the same sections and the same text as BeautifulSoup's select_one + get_text, on every real
    page in ../shared/data and the bundled samples."""
    from bs4 import BeautifulSoup

    from lima_data.recipe import PACKAGE
    from lima_data.report.html import _sections, _strings
    from lima_data.sources.wikihow import SECTIONS

    pages = sorted((shared / "wikihow").rglob("*.htm*")) + sorted((PACKAGE / "samples").rglob("*.htm*"))
    assert len(pages) >= 15
    classes = {cls for names in SECTIONS.values() for cls in names}
    found = 0
    for page in pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8", errors="replace"), "lxml")
        ours = _sections(page, classes)
        for cls in sorted(classes):
            node = soup.select_one(f"div.section.{cls}")
            assert (cls in ours) == (node is not None), (page.name, cls)
            if node is not None:
                found += 1
                assert " ".join(" ".join(_strings(ours[cls])).split()) == " ".join(node.get_text(" ").split())
    assert found >= 20


def test_both_markdown_renderers_give_the_same_html(lima, shared):
    """Kept responses are rendered by markdown-it-pyrs when installed, else markdown-it-py: the same HTML for
    every real row of the build and of LIMA's slice, raw HTML escaped by both."""
    from lima_data.report.html import _markdown

    pyrs = pytest.importorskip("markdown_it_pyrs")
    result, _, _ = lima
    texts = []
    for file in [*result.path.glob("*.jsonl"), shared / "lima" / "lima_train_slice.jsonl"]:
        for line in file.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            texts += [m["content"] for m in row.get("messages", [])] + list(row.get("conversations", []))
    texts.append("<b>raw</b> <script>x</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```\ncode\n```")
    assert len(texts) >= 500
    fast, slow = _markdown(), _markdown(fast=False)
    assert type(fast.parser) is pyrs.MarkdownIt and type(slow.__self__) is not pyrs.MarkdownIt
    assert [fast.parser.render(t) for t in texts] == [slow(t) for t in texts]  # (not through the panic fallback)
    assert "&lt;b&gt;raw&lt;/b&gt;" in fast(texts[-1]) and "<table>" in fast(texts[-1])
