"""Bad rows in real-shaped input never crash or hang a whole build (issue 15): what fuzzing whole builds found
(``benchmarks/fuzz_build.py``), each made here from real rows of ../shared/data or the bundled samples, mutated.

A build with a bad row either goes on with the row counted as malformed (its line named) or, for a file that
cannot be read at all, stops with one ``error: <file>[:<line>]`` line; never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import random
import sys
from pathlib import Path

import pytest
import zstandard
from bs4 import BeautifulSoup
from click.testing import CliRunner

from lima_data.cli import main
from lima_data.files import CSV_FIELD_LIMIT, csv_rows
from lima_data.text import loads_json, markup, markup_reference
from lima_data.text.markup import html_to_markdown

REPO = Path(__file__).resolve().parents[1]
AUTHORED = REPO / "lima_data" / "samples" / "authored" / "lima_train_slice.jsonl"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
LONG_INT = "9" * 5000


def build(source: str, folder: Path, out: Path, *extra: str):
    """``lima-data build --recipe lima --sources SOURCE --input FOLDER`` in-process; a crash is a failed test."""
    result = CliRunner().invoke(main, ["build", "--recipe", "lima", "--sources", source, "--input", str(folder),
                                       "--out", str(out), "--allow-empty", *extra])
    assert "Traceback" not in result.output, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def build_authored(lines: list[str], tmp_path: Path):
    """:func:`build` of an authored JSONL file holding ``lines`` (into ``tmp_path / "out"``)."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "authored.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return build("authored", folder, tmp_path / "out")


def malformed_lines(out: Path) -> dict[int, str]:
    """``{line: message}`` of the malformed rows the build's report/stats.json holds (all shards)."""
    stats = json.loads((out / "lima" / "report" / "stats.json").read_text())
    found: dict[int, str] = {}

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "errors" and isinstance(item, list):
                    for error in item:
                        if isinstance(error, dict) and error.get("line") is not None:
                            found[int(error["line"])] = str(error.get("error"))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(stats)
    return found


# --- JSON that Python cannot read into values -------------------------------------------------------------------

def test_loads_json_turns_deep_nesting_and_huge_integers_into_decode_errors():
    for text in ('{"a": ' + DEEP_JSON + "}", '{"a": ' + LONG_INT + "}"):
        for given in (text, text.encode()):
            with pytest.raises(json.JSONDecodeError) as caught:
                loads_json(given)
            assert "nested too deep" in caught.value.msg or "integer too long" in caught.value.msg
    assert loads_json('{"a": ' + "9" * 30 + "}") == {"a": int("9" * 30)}  # long but readable: kept exact


def test_authored_rows_nested_too_deep_or_with_a_5000_digit_number_are_malformed_rows(tmp_path):
    lines = AUTHORED.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[2])
    lines[2] = json.dumps(row)[:-1] + ', "extra": ' + DEEP_JSON + "}"
    lines[4] = json.dumps(row)[:-1] + ', "extra": ' + LONG_INT + "}"
    result = build_authored(lines, tmp_path)
    assert result.exit_code == 0, result.output
    bad = malformed_lines(tmp_path / "out")
    assert "nested too deep" in bad[3] and "integer too long" in bad[5], bad
    assert "malformed" in result.output


def test_an_authored_row_nested_1000_deep_with_a_surrogate_escape_is_read(tmp_path):
    """orjson reads 1,000 levels; the lone-surrogate repair (run on any row with a surrogate escape) then recursed
    once per level and hit Python's recursion limit (a traceback). It is iterative now: the row is read."""
    lines = AUTHORED.read_text(encoding="utf-8").splitlines()
    row = json.loads(lines[1])
    row["source"] = "authors"
    # an escaped emoji (a surrogate pair: orjson reads it) sends the row through the lone-surrogate repair
    lines[1] = json.dumps(row)[:-1] + ', "extra": ' + "[" * 1000 + '"\\ud83d\\ude00"' + "]" * 1000 + "}"
    result = build_authored(lines, tmp_path)
    assert result.exit_code == 0, result.output
    assert 2 not in malformed_lines(tmp_path / "out")
    stats = json.loads((tmp_path / "out" / "lima" / "report" / "stats.json").read_text())
    assert stats["readers"][0]["counts"]["rows"] >= 1


def test_an_authored_row_with_an_empty_answer_is_malformed_not_a_broken_manifest(tmp_path):
    """A row whose answer is empty became a train row without an assistant turn, and the build stopped at its
    own train.jsonl ("not a manifest row: a train row needs an assistant turn"). It is a malformed row now."""
    lines = AUTHORED.read_text(encoding="utf-8").splitlines()
    for i, answer in ((1, ""), (3, "  \n ")):
        row = json.loads(lines[i])
        row.update(source="authors", conversations=[row["conversations"][0], answer])
        lines[i] = json.dumps(row)
    result = build_authored(lines, tmp_path)
    assert result.exit_code == 0, result.output
    bad = malformed_lines(tmp_path / "out")
    assert bad[2] == bad[4] == "the last assistant turn is empty", bad


def test_a_jsonl_file_whose_first_row_is_nested_too_deep_is_not_a_crash(tmp_path):
    """The first row is peeked at to recognise the file (jsonl claim): that read must not raise either."""
    lines = AUTHORED.read_text(encoding="utf-8").splitlines()
    lines[0] = '{"conversations": ' + DEEP_JSON + "}"
    result = build_authored(lines, tmp_path)
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        assert "authored.jsonl" in result.stderr


# --- Stack Exchange: a 10 MB Body -------------------------------------------------------------------------------

def test_a_10_mb_stack_exchange_body_is_one_malformed_row_with_a_one_line_reason(tmp_path, shared):
    """libxml2 refuses one text over 10,000,000 bytes; its message was two lines with advice for the programmer
    ("try XML_PARSE_HUGE"). The row is malformed, its reason one line that says what is wrong."""
    import re

    text = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if 'PostTypeId="2"' in line and ' Body="' in line)
    lines[at] = re.sub(r' Body="[^"]*"', lambda m: ' Body="' + "&lt;p&gt;word " * 1_000_000 + '"', lines[at])
    folder = tmp_path / "in" / "coffee"
    folder.mkdir(parents=True)
    (folder / "Posts.xml").write_text("\n".join(lines), encoding="utf-8")
    result = build("stackexchange", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    reason = malformed_lines(tmp_path / "out")[at + 1]
    assert "10,000,000 bytes" in reason and "\n" not in reason and "XML_PARSE_HUGE" not in reason, reason


@pytest.mark.parametrize("attribute, post_type", [("Score", "1"), ("Id", "1"), ("Id", "2"), ("ParentId", "2"),
                                                   ("Score", "2"), ("AcceptedAnswerId", "1")])
def test_a_5000_digit_number_in_a_stack_exchange_row_is_that_row_not_the_file(tmp_path, shared, attribute, post_type):
    """``int()`` refuses text of more than 4,300 digits (ValueError): the read of the whole file stopped ("read
    failed after line 9") and the build with it. Now the row is malformed (or, for a number only ranked, read as
    absent, as a Score that is no number always was) and the build goes on with every other row."""
    import re

    text = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    changed = [i for i, line in enumerate(lines) if f'PostTypeId="{post_type}"' in line and 'Score="1' in line][:3]
    for i in changed:
        lines[i] = re.sub(rf' {attribute}="[^"]*"', lambda m: f' {attribute}="{"1" * 5000}"', lines[i])
    folder = tmp_path / "in" / "coffee"
    folder.mkdir(parents=True)
    (folder / "Posts.xml").write_text("\n".join(lines), encoding="utf-8")
    result = build("stackexchange", tmp_path / "in", tmp_path / "out")
    assert result.exit_code == 0, result.output
    bad = malformed_lines(tmp_path / "out")
    assert all("4300" not in reason and "set_int_max_str_digits" not in reason for reason in bad.values()), bad
    stats = json.loads((tmp_path / "out" / "lima" / "report" / "stats.json").read_text())
    assert stats["readers"][0]["rows"] >= len([line for line in lines if "<row " in line]) - len(changed)


def test_an_authored_json_array_nested_too_deep_is_one_clear_error(tmp_path):
    """A JSON array file (LLaMA-Factory's lima.json layout) is one document: an item nested too deep makes it
    unreadable. The peek that recognises the file and the read raised RecursionError (a traceback); now the
    build ends in one line naming the file."""
    rows = [json.loads(line) for line in AUTHORED.read_text(encoding="utf-8").splitlines()][:5]
    for row in rows:
        row["source"] = "authors"
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "authored.json"
    path.write_text(json.dumps(rows)[:-1] + ', {"conversations": ' + DEEP_JSON + "}]", encoding="utf-8")
    result = build("authored", path, tmp_path / "out")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "authored.json" in errors[0] and "nested too deep" in errors[0], result.stderr
    path.write_text("[" + DEEP_JSON + "]", encoding="utf-8")  # not even its first item can be read
    result = build("authored", path, tmp_path / "out")
    assert result.exit_code == 1 and "authored.json" in result.stderr


# --- Super-NaturalInstructions task files of the wrong shape ----------------------------------------------------

def test_natural_instructions_tasks_of_the_wrong_shape_or_with_blank_outputs(tmp_path):
    """A task whose Instances or Categories is no list was a TypeError traceback; one whose outputs are all
    blank made a train row without an answer (the manifest refused the build's own train.jsonl). Both are
    malformed tasks now; a blank output among others is never the one picked."""
    from lima_data.sources.natural_instructions import NaturalInstructionsSource
    from tests.conftest import read_source
    from tests.test_authored_ni import _task

    folder = tmp_path / "tasks"
    folder.mkdir()
    good = _task("Summarize it.", ["Summarization"], 3)
    for instance in good["Instances"]:
        instance["output"] = ["", "  ", instance["output"][0]]
    (folder / "task001_good.json").write_text(json.dumps(good))
    (folder / "task002_blank.json").write_text(json.dumps({**good, "Instances": [
        {"id": "x", "input": "a", "output": ["", " "]}]}))
    (folder / "task003_instances.json").write_text(json.dumps({**good, "Instances": 5}))
    (folder / "task004_categories.json").write_text(json.dumps({**good, "Categories": 7}))
    candidates, stats, _ = read_source(NaturalInstructionsSource(seed=0), [folder])
    assert [c.id for c in candidates] == ["natural_instructions/task001_good"]
    assert candidates[0].response.startswith("Summary ")
    reasons = {shard.path.name: [e["error"] for e in s.errors] for shard, s in stats.items()}
    assert "usable instance" in reasons["task002_blank.json"][0]
    assert "wrong shape" in reasons["task003_instances.json"][0]
    assert "wrong shape" in reasons["task004_categories.json"][0]


def test_an_id_beyond_64_bits_in_a_big_stack_exchange_file_read_in_byte_ranges(tmp_path, shared):
    """A file over ``shard_bytes`` is read in byte ranges joined with polars (Int64 columns): an Id, ParentId or
    Score of 2**70 stopped the build with polars' TypeError. Such a number (no real one has 19 digits) is read
    as absent in both paths, so the ranged build selects what the one-pass build selects."""
    import re

    text = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    rows = [i for i, line in enumerate(lines) if "<row " in line]
    for n, i in enumerate(rows[5:200:20]):
        name = ("Id", "ParentId", "Score")[n % 3]
        lines[i] = re.sub(rf' {name}="[^"]*"', lambda m: f' {name}="{2**70}"', lines[i])
    folder = tmp_path / "in" / "coffee"
    folder.mkdir(parents=True)
    (folder / "Posts.xml").write_text("\n".join(lines), encoding="utf-8")
    recipe = tmp_path / "ranges.toml"
    recipe.write_text(f'name = "lima"\ninclude = ["{REPO}/lima_data/recipes/lima.toml"]\n\n'
                      "[sources.stackexchange.reader]\nshard_bytes = 200000\n")
    selected = []
    for args in (["--recipe", str(recipe)], []):
        result = CliRunner().invoke(main, ["build", *(args or ["--recipe", "lima"]), "--sources", "stackexchange",
                                           "--input", str(tmp_path / "in"), "--out", str(tmp_path / f"out{len(args)}"),
                                           "--allow-empty", "--quiet"])
        assert result.exit_code == 0, result.output
        train = tmp_path / f"out{len(args)}" / "lima" / "train.jsonl"
        selected.append(sorted(json.loads(line)["id"] for line in train.read_text().splitlines()))
    assert selected[0] == selected[1] and selected[0]


# --- Reddit: scores and counts that are not numbers, long CSV fields --------------------------------------------

def _zst(rows: list[str]) -> bytes:
    return zstandard.ZstdCompressor().compress(("\n".join(rows) + "\n").encode("utf-8"))


def _zst_rows(path: Path, n: int) -> list[dict]:
    with open(path, "rb") as fh:
        data = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read()
    return [json.loads(line) for line in data.decode("utf-8").splitlines()[:n]]


def test_reddit_scores_that_are_infinite_nan_or_text_are_malformed_rows(tmp_path, shared):
    """Real AskMen submissions made r/WritingPrompts prompts, real 2005 comments (their text: real answers of the
    authored sample) made their stories; JSON's
    ``Infinity`` / ``NaN`` / ``1e999`` and text scores were an OverflowError or ValueError traceback."""
    submissions = _zst_rows(shared / "reddit" / "zst" / "AskMen_submissions.zst", 40)
    comments = _zst_rows(shared / "reddit" / "zst" / "RC_2005-12.zst", 40)
    for n, row in enumerate(submissions):
        row.update(subreddit="WritingPrompts", title="[WP] " + str(row.get("title")), score=1000 + n, over_18=False)
    stories = [json.loads(line)["conversations"][1] for line in AUTHORED.read_text(encoding="utf-8").splitlines()]
    stories = [story for story in stories if 600 <= len(story) <= 4000]  # real prose, as long as a story
    for n, row in enumerate(comments):
        row.update(subreddit="WritingPrompts", body=stories[n % len(stories)],
                   link_id="t3_" + submissions[n]["id"], parent_id="t3_" + submissions[n]["id"], score=50 + n)
    sub_lines = [json.dumps(row) for row in submissions]
    com_lines = [json.dumps(row) for row in comments]
    sub_lines[3] = sub_lines[3].replace('"score": 1003', '"score": Infinity')
    sub_lines[5] = sub_lines[5].replace('"score": 1005', '"score": "lots"')
    sub_lines[6] = json.dumps({**submissions[6], "num_comments": "many"})  # metadata only: the row is kept
    com_lines[7] = com_lines[7].replace('"score": 57', '"score": 1e999')
    com_lines[8] = com_lines[8].replace('"score": 58', '"score": NaN')
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "WritingPrompts_submissions.zst").write_bytes(_zst(sub_lines))
    (folder / "WritingPrompts_comments.zst").write_bytes(_zst(com_lines))
    result = build("reddit", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    bad = malformed_lines(tmp_path / "out")
    assert "score is not a number" in bad[4] and "'lots'" in bad[6], bad
    assert "score is not a whole number" in bad[8] and "score is not a whole number" in bad[9], bad
    assert 7 not in bad
    train = [json.loads(line) for line in (tmp_path / "out" / "lima" / "train.jsonl").read_text().splitlines()]
    kept = {row["meta"]["submission_id"]: row for row in train}
    assert submissions[6]["id"] in kept and kept[submissions[6]["id"]]["meta"]["num_comments"] is None


def test_reddit_csv_with_a_field_over_131072_characters_is_read(tmp_path, shared):
    """Python's csv stops at 131,072 characters a field ("field larger than field limit"), which stopped the
    whole build; a long self-post is a real row. A field over CSV_FIELD_LIMIT is still an error naming the line."""
    text = (shared / "reddit" / "top_posts_csv" / "writingprompts.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0]
    rows[5][header.index("body")] = "word " * 40_000  # 200,000 characters
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows[:50])
    path = tmp_path / "writingprompts.csv"
    path.write_text(buf.getvalue(), encoding="utf-8")
    read = dict(csv_rows(path))
    assert len(max((row["body"] for row in read.values()), key=len)) == 200_000
    assert CSV_FIELD_LIMIT >= 1 << 24


# --- wikiHow pages with a damaged mw.config ---------------------------------------------------------------------

@pytest.mark.parametrize("title, categories", [
    ('"wgTitle":"Grill \\u12 Fish"', '"wgCategories":[' + "[" * 5000 + "]" * 5000 + "]"),
    ('"wgTitle":"Grill \\x Fish"', '"wgCategories":[1, 2, "Food and Entertaining"]'),
])
def test_wikihow_page_with_a_damaged_title_or_category_list_still_builds(tmp_path, shared, title, categories):
    """A bad JSON escape in ``wgTitle`` or a ``wgCategories`` that is no list of strings (JSONDecodeError,
    RecursionError, AttributeError on ``1.strip()``) stopped the build; the page's ``<title>`` and the strings
    among the categories are used instead."""
    import re

    page = shared / "wikihow" / "html_pages_2020" / "3_Ways_to_Grill_Fish_-_wikiHow.html"
    text = page.read_text(encoding="utf-8")
    assert re.search(r'"wgTitle":"[^"]*"', text) and re.search(r'"wgCategories":\[[^\]]*\]', text)
    text = re.sub(r'"wgTitle":"[^"]*"', lambda m: title, text, count=1)
    text = re.sub(r'"wgCategories":\[[^\]]*\]', lambda m: categories, text, count=1)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / page.name).write_text(text, encoding="utf-8")
    result = build("wikihow", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    funnel = json.loads((tmp_path / "out" / "lima" / "report" / "stats.json").read_text())
    assert "wikihow" in json.dumps(funnel)
    from lima_data.sources.wikihow import WikiHowSource
    from tests.conftest import read_source

    candidates, _, _ = read_source(WikiHowSource(), [folder / page.name])
    assert len(candidates) == 1 and candidates[0].prompt == "How to grill fish?"
    if "Food and Entertaining" in categories:
        assert candidates[0].meta["categories"] == ["Food and Entertaining"]


# --- HTML nested a million deep ---------------------------------------------------------------------------------

def test_html_nested_beyond_the_unwrap_budget_converts_as_its_text(shared):
    """bs4's unwrap walks up every ancestor, so unwrapping n nested tags took ~n^2 steps: 10 MB of unclosed
    ``<b>`` ran for hours (a 9 MB wikiHow page hung its build). Past MAX_UNWRAP_WORK the post converts as its text
    alone; below it (a real answer wrapped 400 deep) the markup is kept as before."""
    import html as html_module
    import re

    posts = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8")
    body = html_module.unescape(re.search(r'PostTypeId="2"[^>]* Body="([^"]{1500,})"', posts).group(1))
    words = re.findall(r"[A-Za-z]{6,}", BeautifulSoup(body, "lxml").get_text())[:5]

    deep = "<b>" * 100_000 + body
    soup = BeautifulSoup(deep, "lxml")
    tags = len(soup.find_all(True))
    assert tags * 100_000 > markup_reference.MAX_UNWRAP_WORK
    converted = markup_reference.make_convertible(soup)
    assert converted is not soup and not converted.find_all(True)  # the text alone
    markdown, _ = html_to_markdown(deep, prune_links=True)
    assert all(word in markdown for word in words) and "<b>" not in markdown

    shallow = "<div>" * 400 + body + "</div>" * 400
    assert html_to_markdown(shallow, prune_links=True) == html_to_markdown(body, prune_links=True)


# --- the fuzzer itself: a small seeded run over every source ----------------------------------------------------

def test_fuzz_build_smoke(tmp_path):
    """A few seeded whole-build mutations per source (benchmarks/fuzz_build.py's cases, built in-process): no
    crash; an error names the input."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import fuzz_build
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    picked = ["body_deep", "charrefs", "numbers", "cell_numbers", "wh_categories", "deep_json", "file_cut_7z"]
    for source, kind, make in fuzz_build.cases("all"):
        if kind not in picked or (kind == "deep_json" and source != "authored"):
            continue
        case = make(random.Random(f"smoke/{source}/{kind}"), kind, tmp_path / f"{source}-{kind}")
        result = build(source, case, tmp_path / f"out-{source}-{kind}", "--quiet")  # in-process: no traceback
        assert result.exit_code == 0 or str(case) in result.stderr, (source, kind, result.output)


# --- the report's word diff of a huge trace ---------------------------------------------------------------------

def test_report_word_diff_of_a_post_with_one_word_repeated_30000_times(shared):
    """The report shows a trace of what ``clean`` changed (raw HTML against Markdown) as a word diff; difflib's
    loop is quadratic where one word repeats, so a post ending in 30,000 "x " held the build in the report for
    hours. Past MAX_DIFF_CELLS the common first and last words are taken off first: the diff is the same change."""
    import html as html_module
    import re

    from lima_data.report.html import MAX_DIFF_CELLS, _trimmed_opcodes, diff_marked

    posts = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8")
    body = html_module.unescape(re.search(r'PostTypeId="2"[^>]* Body="([^"]{1500,})"', posts).group(1))
    before = body + "<p>" + "x " * 30_000 + "</p>"
    after, _ = html_to_markdown(before, prune_links=True)
    words = [len(re.findall(r"\s+|[^\s]+", text)) for text in (before, after)]
    assert words[0] * words[1] > MAX_DIFF_CELLS
    left, right = diff_marked(before, after)
    assert left.startswith("<del>&lt;p&gt;") and right.startswith("<ins>") and "x x x" in right  # one replace
    left, right = diff_marked("Intro. " + before, "Intro. " + after + " Outro.")
    assert left.startswith("Intro. <del>") and right.startswith("Intro. <ins>") and right.endswith("Outro.</ins>")
    # the trimmed opcodes rebuild the second text from the first
    a, b = ["s", "x", "y", "x", "e"], ["s", "y", "x", "x", "z", "e"]
    ops = _trimmed_opcodes(a, b)
    assert [b[j1:j2] for _, _, _, j1, j2 in ops] and sum((b[j1:j2] for *_, j1, j2 in ops), []) == b
    assert ops[0] == ("equal", 0, 1, 0, 1) and ops[-1] == ("equal", 4, 5, 5, 6)


# --- regular expressions that retried from every character of a long run (quadratic) ---------------------------

class _Hang(BaseException):  # (not Exception: html_to_markdown's fast path falls back on any Exception)
    pass


def _no_hang(seconds: int = 10):
    """A guard that turns a hang into a failure: the work below takes ~0.05 s; before the fixes it took 25-55 s
    (sizes chosen so; a regex running in C is only stopped when it returns). Not a speed target: those are
    measured by benchmarks/."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard():
        def stop(*_):
            raise _Hang(f"still running after {seconds} s")

        previous = signal.signal(signal.SIGALRM, stop)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return guard()


_OLD_DEBRIS = {  # the patterns before issue 15's fix, for the equality check
    "citations": r"[ \t]*(?:\[\d{1,3}\][ \t]*)?\bX\s+(?:"
                 r"Trustworthy\s+Source\b[^\n]{0,400}?Go\s+to\s+source"
                 r"|Expert\s+Source\b(?:[^\n]{0,200}?Expert\s+Interview\.\s*%(d)s)?"
                 r"|Research\s+source\b(?:[^\n]{0,160}?Personal\s+interview\.\s*%(d)s)?)"
                 r"|[ \t]*\[\d{1,3}\](?!\()",
    "polls": r"[ \t]*Reader\s+Poll:[^\n]{0,600}?(?:\[?Take\s+Poll\]?|$)",
    "images": r"[ \t]*(?:!\[[^\]\n]*\]\([^)\n]*\)|\[\[(?:Image|File):[^\]\n]*\]\]|\{\{[^}\n]*\}\}"
              r"|\[Image:[^\]\n]*\]|\{\s*\"smallUrl\"[^{}]*\})",
}


def test_wikihow_debris_is_removed_as_before_and_a_long_run_of_spaces_does_not_hang(shared, monkeypatch):
    """DEBRIS patterns opened with ``[ \\t]*``: a run of n spaces followed by no debris was tried from each of its
    characters (16,000 spaces: 8.5 s, growing as the square). They now start only where a run starts, which
    matches the same text: checked against the old patterns on real wikiHow paragraphs with debris and runs of
    spaces inserted at random."""
    import re

    from lima_data.sources import wikihow

    rows = list(csv_rows(shared / "wikihow" / "scraped_paragraphs" / "wikihow.csv"))[:300]
    debris = ["[2] X Expert Source Bridgett Price Professional Cleaner Expert Interview. 23 May 2019.", "[7]",
              " X Research source ", "Reader Poll: What do you do? [Take Poll]", "![img](x.jpg)", "{{Icon}}",
              "\t\t", "   ", " .", " X Trustworthy Source Mayo Clinic Go to source", "[[Image:x.png]]"]
    rnd = random.Random(15)
    texts = []
    for _, row in rows:
        words = row["paragraph"].split(" ")
        for _ in range(3):
            words.insert(rnd.randrange(len(words) + 1), rnd.choice(debris) + " " * rnd.randrange(4))
        texts.append(" ".join(words))
    new = [wikihow.strip_debris(text) for text in texts]
    old_debris = dict(wikihow.DEBRIS)
    for kind, pattern in _OLD_DEBRIS.items():
        old_debris[kind] = re.compile(pattern % {"d": wikihow._DATE}, re.I | (re.M if kind == "polls" else 0))
    monkeypatch.setattr(wikihow, "DEBRIS", old_debris)
    monkeypatch.setattr(wikihow, "_SPACE_BEFORE_PUNCT", re.compile(r"[ \t]+([.,;:!?])(?!\S)"))
    assert [wikihow.strip_debris(text) for text in texts] == new
    assert sum(counts["citations"] for _, counts in new) > 100
    monkeypatch.undo()
    with _no_hang():
        text, counts = wikihow.strip_debris("Rinse. [2]" + " \t" * 20_000 + "Dry.")
    assert counts["citations"] == 1 and text.startswith("Rinse.") and text.endswith("Dry.")


def test_html_with_a_long_run_of_spaces_in_code_or_of_private_use_marks_does_not_hang(shared):
    """markdownify's ``re.sub(r"[ \\n]*$", ...)`` on a ``<pre>`` and our link-mark pattern on a run of U+E000
    retried from every character (20,000 characters: ~1 s, growing as the square). The fast path strips the same
    characters with ``rstrip``: the same Markdown as the reference path (markdownify itself)."""
    import html as html_module
    import re

    posts = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8")
    body = html_module.unescape(re.search(r'PostTypeId="2"[^>]* Body="([^"]{1500,})"', posts).group(1))
    for run in (" " * 2000, "\n \n" * 500, " x" + " " * 1000 + "\n"):
        post = body + f"<pre><code>a = 1{run}b = 2{run}</code></pre>"
        fast, _ = markup._fast_markdown(post, True)
        assert fast == markup_reference.reference_markdown(post, True)[0]
    with _no_hang():
        markdown, _ = html_to_markdown(body + "<pre><code>a" + " " * 100_000 + "b</code></pre>", prune_links=True)
        assert markdown.endswith("a" + " " * 100_000 + "b\n```")  # code is kept as written
        markdown, _ = html_to_markdown(body + "<p>a" + "\ue000" * 100_000 + "b</p>", prune_links=True)
    assert markdown.startswith(html_to_markdown(body, prune_links=True)[0][:200])


# --- Empty files: one empty shard is skipped with a warning naming it, not the end of the build -----------------

def _reader_errors(out: Path) -> dict[str, list[str]]:
    """``{shard: [error]}`` of report/stats.json's readers that recorded a problem."""
    stats = json.loads((out / "lima" / "report" / "stats.json").read_text())
    return {r["shard"]: [e["error"] for e in r["errors"]] for r in stats["readers"] if r["errors"]}


@pytest.mark.parametrize("content", [b"", b'<?xml version="1.0" encoding="utf-8"?>\n', "7z"])
def test_a_multi_site_build_with_one_empty_posts_xml_finishes_with_the_other_sites(tmp_path, shared, content):
    """An empty Posts.xml (0 bytes, or only the XML declaration) or an empty .7z member stopped a build over
    many sites ("the file is empty"). DESIGN.md section 5: the file is skipped with a warning naming it and
    recorded in stats.json's readers; the other sites are read; ``--strict`` still stops with the error."""
    folder = tmp_path / "in"
    (folder / "coffee").mkdir(parents=True)
    (folder / "coffee" / "Posts.xml").write_bytes((shared / "stackexchange" / "coffee" / "Posts.xml").read_bytes())
    if content == "7z":
        import py7zr

        (tmp_path / "Posts.xml").write_bytes(b"")
        empty = folder / "empty.stackexchange.com.7z"
        with py7zr.SevenZipFile(empty, "w") as archive:
            archive.write(tmp_path / "Posts.xml", "Posts.xml")
        label = f"{empty}!Posts.xml"
    else:
        (folder / "empty.stackexchange.com").mkdir()
        empty = folder / "empty.stackexchange.com" / "Posts.xml"
        empty.write_bytes(content)
        label = str(empty)
    result = build("stackexchange", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"warning: {label}: the file is empty" in result.stderr, result.stderr
    assert any(e.startswith("the file is empty") for e in _reader_errors(tmp_path / "out")[label])
    train = (tmp_path / "out" / "lima" / "train.jsonl").read_text().splitlines()
    assert train and all(json.loads(line)["domain"] == "coffee.stackexchange.com" for line in train)
    result = build("stackexchange", folder, tmp_path / "strict", "--strict")
    assert result.exit_code == 1 and f"error: {label}: the file is empty" in result.stderr, result.stderr


def test_empty_files_of_the_other_sources_are_skipped_with_a_warning_or_named_in_an_error(tmp_path, shared):
    """The same for every source: an empty Pushshift month (0 bytes, or an empty zstd frame) and an empty
    Super-NaturalInstructions task are skipped with ``<file>: the file is empty`` (an error with ``--strict``);
    an empty file no source can recognise (a wikiHow CSV, an authored JSONL) is listed as an empty file skipped,
    and named alone on the command line it is an error saying it is empty."""
    folder = tmp_path / "reddit"
    folder.mkdir()
    (folder / "RC_2005-12.zst").write_bytes((shared / "reddit" / "zst" / "RC_2005-12.zst").read_bytes())
    (folder / "RS_2005-11.zst").write_bytes(b"")
    (folder / "RS_2005-12.zst").write_bytes(zstandard.ZstdCompressor().compress(b""))
    result = build("reddit", folder, tmp_path / "out-reddit")
    assert result.exit_code == 0, result.output
    for name in ("RS_2005-11.zst", "RS_2005-12.zst"):
        assert f"warning: {folder / name}: the file is empty: skipped" in result.stderr, result.stderr
    errors = _reader_errors(tmp_path / "out-reddit")
    assert errors[str(folder / "RS_2005-11.zst")] == ["the file is empty: skipped"]
    assert str(folder / "RC_2005-12.zst") not in errors
    result = build("reddit", folder, tmp_path / "strict-reddit", "--strict")
    assert result.exit_code == 1 and f"error: {folder / 'RS_2005-11.zst'}: the file is empty" in result.stderr

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "task001_empty.json").write_text(" \n")
    result = build("natural_instructions", tasks, tmp_path / "out-ni")
    assert result.exit_code == 0 and f"{tasks / 'task001_empty.json'}: the file is empty: skipped" in result.stderr
    result = build("natural_instructions", tasks, tmp_path / "strict-ni", "--strict")
    assert result.exit_code == 1 and f"error: {tasks / 'task001_empty.json'}: the file is empty" in result.stderr

    authored = tmp_path / "authored"
    authored.mkdir()
    (authored / "a.jsonl").write_text(AUTHORED.read_text(encoding="utf-8"), encoding="utf-8")
    (authored / "b.jsonl").write_bytes(b"")
    result = build("authored", authored, tmp_path / "out-authored")
    assert result.exit_code == 0 and f"1 empty file(s) under the inputs were skipped: {authored / 'b.jsonl'}" in result.stderr
    (tmp_path / "wikihow.csv").write_bytes(b"")
    result = build("wikihow", tmp_path / "wikihow.csv", tmp_path / "out-wikihow")
    assert result.exit_code == 1 and f"error: {tmp_path / 'wikihow.csv'}: the file is empty" in result.stderr


# --- Stack Exchange: character references libxml2 refuses are repaired, not the row dropped ---------------------

BAD_REFS = ["&#1;", "&#x1F;", "&#0;", "&#xD800;", "&#xFFFE;", "&#x110000;", "&#99999999999;", "\x01"]


def _read_posts(path: Path, **settings):
    """Candidates by id and the added-up reader stats of a Posts.xml read with ``min_answer_score`` 10."""
    from lima_data.sources import ReaderStats
    from lima_data.sources.stackexchange import StackExchangeSource
    from tests.conftest import read_source

    candidates, stats, shards = read_source(StackExchangeSource({"min_answer_score": 10, **settings}), [path])
    total = ReaderStats(str(path))
    for shard_stats in stats.values():
        total.merge(shard_stats)
    return {c.id: c for c in candidates}, total, shards


def test_character_references_xml_refuses_are_repaired_in_whole_and_byte_range_reads(tmp_path, shared):
    """A row holding ``&#1;``, ``&#xD800;``, ``&#x110000;``, ... (bodies pasted from binary files or Word) was
    dropped whole as bad XML. Now each such character becomes U+FFFD, the row is read and counted as
    ``repaired``; the same in the whole-file read and the byte-range read (the top answer fetched by offset),
    and in a light question's title."""
    import re

    text = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    clean, _, _ = _read_posts(shared / "stackexchange" / "coffee" / "Posts.xml")
    answered = [c for c in clean.values() if c.response][:len(BAD_REFS)]
    answer_ids = {str(c.meta["answer_id"]): ref for c, ref in zip(answered, BAD_REFS)}
    light = next(c for c in clean.values() if not c.response)
    changed = 0
    for i, line in enumerate(lines):
        found = re.search(r' Id="(\d+)"', line)
        if found and found[1] in answer_ids:  # the top answer's body: its text is used
            lines[i] = line.replace(' Body="', ' Body="' + answer_ids[found[1]], 1)
            changed += 1
        elif found and int(found[1]) == light.meta["question_id"]:  # a light question's title
            lines[i] = line.replace(' Title="', ' Title="&#x2;', 1)
    assert changed == len(BAD_REFS)
    folder = tmp_path / "coffee"
    folder.mkdir()
    (folder / "Posts.xml").write_text("\n".join(lines), encoding="utf-8")
    whole, whole_stats, _ = _read_posts(folder / "Posts.xml")
    ranged, range_stats, shards = _read_posts(folder / "Posts.xml", shard_bytes=100_000)
    assert len(shards) > 3
    assert whole_stats.malformed == 0 and whole_stats.counts["repaired"] == len(BAD_REFS), whole_stats
    assert range_stats.to_dict() == whole_stats.to_dict()
    assert whole.keys() == clean.keys()
    for candidate in answered:
        for read in (whole, ranged):
            assert read[candidate.id].response == "\ufffd" + candidate.response
    assert whole[light.id].prompt == ranged[light.id].prompt == "\ufffd" + light.prompt


def test_a_comment_with_a_character_reference_xml_refuses_is_repaired(tmp_path, shared):
    """The same for Comments.xml (the ``stackexchange_dialogue`` source), on the real history_meta dump: every
    comment given a ``&#1;`` was lost as bad XML; now the same chains are read, the character as U+FFFD."""
    from lima_data.sources import ReaderStats
    from lima_data.sources.stackexchange import StackExchangeDialogueSource
    from tests.conftest import read_source

    site = tmp_path / "history_meta"
    site.mkdir()
    for name in ("Posts.xml", "Comments.xml"):
        (site / name).write_bytes((shared / "stackexchange" / "history_meta" / name).read_bytes())
    clean, _, _ = read_source(StackExchangeDialogueSource(), [site])
    lines = (site / "Comments.xml").read_text(encoding="utf-8-sig").split("\n")
    rows = [i for i, line in enumerate(lines) if line.lstrip().startswith("<row ") and ' Text="' in line]
    for i in rows:
        lines[i] = lines[i].replace(' Text="', ' Text="&#1;', 1)
    (site / "Comments.xml").write_text("\n".join(lines), encoding="utf-8")
    repaired, stats, _ = read_source(StackExchangeDialogueSource(), [site])
    total = ReaderStats("all")
    for shard_stats in stats.values():
        total.merge(shard_stats)
    assert total.malformed == 0 and total.counts["repaired"] > 0, total
    assert [c.id for c in repaired] == [c.id for c in clean] and clean
    assert all(turn["content"].startswith("\ufffd") for turn in repaired[0].meta["turns"][2:]), repaired[0].meta


# --- Stack Exchange: a Score that is no number reads the same parsed and unparsed -------------------------------

def test_a_score_that_is_no_number_is_0_whether_the_row_is_parsed_or_read_light(tmp_path, shared):
    """A Score that is no number was 0 in a row read without a parse (the regular expression finds no number:
    absent) but made the row malformed when it was parsed (``int("abc")``), so one row was kept or lost by
    which path read it. Both read it as 0, as a missing Score: the same candidates whether every row is parsed
    (``min_answer_score`` None), only the ones that can pass are (10), or the file is read in byte ranges."""
    import re


    text = (shared / "stackexchange" / "coffee" / "Posts.xml").read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    parents = re.findall(r'PostTypeId="2" ParentId="(\d+)"', text)
    only = next(p for p in parents if parents.count(p) == 1)  # an answer alone: it stays its question's top
    for i, line in enumerate(lines):
        if f'PostTypeId="2" ParentId="{only}"' in line:
            lines[i] = re.sub(r' Score="[^"]*"', ' Score="n/a"', line)
            answer = i
        elif f'<row Id="{only}" ' in line:
            lines[i] = re.sub(r' Score="[^"]*"', ' Score="abc"', re.sub(r' AnswerCount="[^"]*"', ' AnswerCount="1.5"', line))
    folder = tmp_path / "coffee"
    folder.mkdir()
    (folder / "Posts.xml").write_text("\n".join(lines), encoding="utf-8")
    key = f"stackexchange/coffee.stackexchange.com/{only}"
    reads = {}
    for name, settings in (("parsed", {"min_answer_score": None}), ("light", {}),
                           ("ranges", {"shard_bytes": 100_000})):
        read, stats, _ = _read_posts(folder / "Posts.xml", **settings)
        assert stats.malformed == 0, (name, stats.errors)
        reads[name] = (read, stats)
    parsed = reads["parsed"][0][key]
    assert parsed.meta["question_score"] == 0 and parsed.score == 0 and parsed.meta["answer_count"] == 0
    assert parsed.response and str(parsed.meta["answer_id"]) in lines[answer]
    for name in ("light", "ranges"):
        candidate = reads[name][0][key]
        assert (candidate.meta["question_score"], candidate.score, candidate.meta["answer_id"]) == (
            0, 0, parsed.meta["answer_id"]), name
    assert reads["ranges"][1].to_dict() == reads["light"][1].to_dict()
    assert reads["parsed"][1].counts == reads["light"][1].counts


def test_comment_links_are_replaced_as_before_and_a_line_of_brackets_does_not_hang(shared):
    """The dialogue filter's Markdown-link pattern scanned from every ``[`` to the next ``]``: a comment line of
    100,000 ``[`` (or of ``[a](http://x`` repeated) took ~40 s, growing as the square. The linear scanner
    replaces the same links: checked against the old pattern on every real comment of the shared dumps and on
    200,000 random strings of link pieces."""
    import html as html_module
    import re

    from lima_data.filters.dialogue import _links_to_text, comment_markdown

    old = re.compile(r"\[([^\]\n]+)\]\((?:https?|ftp)://[^)\s]+(?:\s+\"[^\"]*\")?\)")
    texts = []
    for site in ("history_meta", "bicycles_meta"):
        xml = (shared / "stackexchange" / site / "Comments.xml").read_text(encoding="utf-8-sig")
        texts += [html_module.unescape(t) for t in re.findall(r' Text="([^"]*)"', xml)]
    assert sum(1 for t in texts if old.search(t)) > 50  # real comments with links
    rnd = random.Random(15)
    pieces = ["[", "]", "(", ")", "\n", " ", '"', "a", "http://", "ftp://", "https://", "](", "](http://x"]
    texts += ["".join(rnd.choice(pieces) for _ in range(rnd.randrange(16))) for _ in range(200_000)]
    assert [_links_to_text(t) for t in texts] == [old.subn(r"\1", t) for t in texts]
    with _no_hang():
        assert comment_markdown("[" * 100_000)[0] == "[" * 100_000
        text, changes = comment_markdown("[a](http://x" * 10_000)  # no ")": no link
        assert changes["links"] == 0
        text, changes = comment_markdown("[a](http://x" * 10_000 + ")")
    assert changes["links"] == 1 and text == "a"  # one link: its URL runs to the last ")"


# --- A .7z cut short: the site is skipped with a warning, the other sites are read ------------------------------

@pytest.mark.parametrize("backend", ["7-Zip", "py7zr"])
def test_a_cut_7z_archive_in_a_multi_site_build_is_skipped_with_one_clear_warning(tmp_path, shared, monkeypatch,
                                                                                   backend):
    """A .7z keeps its index at its end, so a cut download cannot even be listed: the build over every site
    stopped, with 7-Zip's message repeating the path ("ERROR: <path> : <path> Open ERROR: ..."). Now the archive
    is skipped with one warning naming it and saying it is cut short, recorded in stats.json's readers; the
    other sites are read; ``--strict`` stops with that one-line error."""
    from lima_data.sources.stackexchange import sevenzip

    if backend == "py7zr":
        monkeypatch.setattr(sevenzip, "find_7zip", lambda: None)
    elif sevenzip.find_7zip() is None:
        pytest.skip("no 7-Zip binary")
    folder = tmp_path / "in"
    (folder / "coffee").mkdir(parents=True)
    (folder / "coffee" / "Posts.xml").write_bytes((shared / "stackexchange" / "coffee" / "Posts.xml").read_bytes())
    data = (shared / "stackexchange" / "beer.stackexchange.com_2020" / "beer.stackexchange.com.7z").read_bytes()
    archive = folder / "beer.stackexchange.com.7z"
    archive.write_bytes(data[: len(data) // 2])
    result = build("stackexchange", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stderr.splitlines() if str(archive) in line)
    assert warning.startswith(f"warning: {archive}: cannot open as a 7z archive") and warning.endswith(": skipped")
    assert warning.count(str(archive)) == 1, warning
    if backend == "7-Zip":
        assert "cut short" in warning, warning
    assert _reader_errors(tmp_path / "out")[str(archive)][0].startswith("cannot open as a 7z archive")
    train = (tmp_path / "out" / "lima" / "train.jsonl").read_text().splitlines()
    assert train and all(json.loads(line)["domain"] == "coffee.stackexchange.com" for line in train)
    result = build("stackexchange", folder, tmp_path / "strict", "--strict")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.exit_code == 1 and len(errors) == 1 and errors[0].startswith(f"error: {archive}: cannot open")


def test_the_dumps_other_archives_in_a_folder_are_skipped_not_the_end_of_the_build(tmp_path, shared):
    """The public dump splits Stack Overflow into stackoverflow.com-Posts.7z, -Users.7z, -Comments.7z, ...: a
    build over the dump's folder stopped at the first archive without a Posts.xml ("no Posts.xml in this
    archive"). Found in a folder, such an archive is another file of the dump: skipped and listed; named alone,
    it is still that error."""
    import py7zr

    folder = tmp_path / "in"
    (folder / "coffee").mkdir(parents=True)
    (folder / "coffee" / "Posts.xml").write_bytes((shared / "stackexchange" / "coffee" / "Posts.xml").read_bytes())
    users = folder / "stackoverflow.com-Users.7z"
    with py7zr.SevenZipFile(users, "w") as archive:
        archive.writestr((shared / "stackexchange" / "history_meta" / "Users.xml").read_bytes(), "Users.xml")
    result = build("stackexchange", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "belong to no source being built and were skipped" in result.stderr and str(users) in result.stderr
    assert (tmp_path / "out" / "lima" / "train.jsonl").read_text().strip()
    result = build("stackexchange", users, tmp_path / "alone")
    assert result.exit_code == 1 and f"error: {users}: no Posts.xml in this archive" in result.stderr


# --- Files a build could only skip silently or misname: broken links, UTF-16 -------------------------------------

def test_broken_links_are_listed_and_utf16_files_are_named_as_utf16(tmp_path, shared):
    """A broken symbolic link (or a link loop) under the inputs was skipped without a word (a dangling
    ``genai/Posts.xml`` lost a whole site silently); a UTF-16 file (Windows tools write them) was "not an XML
    file" or "not a dump of any source". Now the links are listed as broken and skipped (a loop no longer
    reaches ``Path.resolve``'s RuntimeError), and a UTF-16 file is an error saying it is UTF-16."""
    import os

    folder = tmp_path / "in"
    (folder / "coffee").mkdir(parents=True)
    (folder / "coffee" / "Posts.xml").write_bytes((shared / "stackexchange" / "coffee" / "Posts.xml").read_bytes())
    (folder / "genai").mkdir()
    os.symlink(folder / "nowhere.xml", folder / "genai" / "Posts.xml")
    os.symlink(folder / "loop", folder / "loop")
    result = build("stackexchange", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (f"2 broken symbolic link(s) under the inputs were skipped: {folder / 'genai' / 'Posts.xml'}, "
            f"{folder / 'loop'}") in result.stderr, result.stderr
    manifest = json.loads((tmp_path / "out" / "lima" / "manifest.json").read_text())
    assert str(folder / "loop") in manifest["skipped"]

    text = (shared / "stackexchange" / "genai" / "Posts.xml").read_text(encoding="utf-8-sig")
    utf16 = tmp_path / "utf16" / "genai"
    utf16.mkdir(parents=True)
    (utf16 / "Posts.xml").write_bytes(text.replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"))
    result = build("stackexchange", utf16.parent, tmp_path / "out-utf16")
    assert result.exit_code == 1 and f"error: {utf16 / 'Posts.xml'}:1: the file is UTF-16" in result.stderr
    authored = tmp_path / "authored.jsonl"
    authored.write_bytes(AUTHORED.read_text(encoding="utf-8").encode("utf-16"))
    result = build("authored", authored, tmp_path / "out-authored")
    assert result.exit_code == 1 and f"error: {authored}: the file is UTF-16" in result.stderr


def test_a_pushshift_month_cut_mid_frame_is_reported_as_truncated(tmp_path, shared):
    """zstandard's stream reader ends a .zst cut inside a frame without an error: the build reported one
    malformed row ("bad JSON: Unterminated string") and nothing about the file. Now the file is marked truncated
    (stats.json) and the warning says it ends inside a zstd frame; a whole file, a cut-free one of two frames,
    is not."""
    from lima_data.sources.reddit import _zst_cut

    data = (shared / "reddit" / "zst" / "RC_2005-12.zst").read_bytes()
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "AskMen_submissions.zst").write_bytes((shared / "reddit" / "zst" / "AskMen_submissions.zst").read_bytes())
    cut = folder / "RC_2005-12.zst"
    cut.write_bytes(data[: len(data) // 2])
    result = build("reddit", folder, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert f"warning: {cut}: 1 malformed row(s) and the file is truncated" in result.stderr, result.stderr
    assert "ends inside a zstd frame" in result.stderr
    stats = json.loads((tmp_path / "out" / "lima" / "report" / "stats.json").read_text())
    assert [r["truncated"] for r in stats["readers"] if r["shard"] == str(cut)] == [True]
    assert [r["truncated"] for r in stats["readers"] if r["shard"] != str(cut)] == [False]
    two = tmp_path / "two.zst"
    two.write_bytes(data + zstandard.ZstdCompressor().compress(b'{"id": "x"}\n'))
    assert not _zst_cut(two) and not _zst_cut(shared / "reddit" / "zst" / "RC_2005-12.zst") and _zst_cut(cut)


# --- A dump rewritten by another tool: rows not one per line --------------------------------------------------

def _rewritten_forms(source: Path, folder: Path) -> dict[str, Path]:
    """The real Posts.xml ``source`` as other tools write it: ElementTree's ``tree.write()`` (every row on one
    line) and a pretty-printer that wraps attributes over lines; each as ``folder/<form>/<site>/Posts.xml``."""
    import re

    from lxml import etree

    tree = etree.parse(str(source))
    for row in tree.getroot():
        row.tail = None
    tree.getroot().text = None
    forms = {"one_line": etree.tostring(tree, xml_declaration=True, encoding="utf-8"),
             "wrapped": re.sub(rb'" (?=[A-Z]\w*=")', b'"\n      ', source.read_bytes())}
    paths = {}
    for form, data in forms.items():
        (folder / form / source.parent.name).mkdir(parents=True)
        paths[form] = folder / form / source.parent.name / "Posts.xml"
        paths[form].write_bytes(data)
    return paths


def test_a_posts_xml_whose_rows_are_not_one_per_line_reads_as_the_dump(tmp_path, shared):
    """The reader reads the dump line by line; the same XML written by another tool (ElementTree: every row on
    one line; attributes wrapped over lines) gave no row at all, silently ("0 malformed rows and the file is
    truncated"): a whole site lost. Such a file is now rewritten one row per line (lxml iterparse, bounded
    memory) and read: the same candidates and counts as the dump itself, also where the file would be split
    into byte ranges (it is not) and inside a .7z."""
    import py7zr

    source = shared / "stackexchange" / "coffee" / "Posts.xml"
    dump, dump_stats, _ = _read_posts(source)
    for form, path in _rewritten_forms(source, tmp_path / "forms").items():
        for settings in ({}, {"shard_bytes": 100_000}):
            read, stats, shards = _read_posts(path, **settings)
            assert len(shards) == 1, form
            assert {k: c.to_dict() for k, c in read.items()} == {k: c.to_dict() for k, c in dump.items()}, form
            assert stats.counts == dump_stats.counts and stats.malformed == 0 and not stats.truncated, (form, stats)
    archive = tmp_path / "coffee.stackexchange.com.7z"
    with py7zr.SevenZipFile(archive, "w") as out:
        out.write(tmp_path / "forms" / "one_line" / "coffee" / "Posts.xml", "Posts.xml")
    read, stats, _ = _read_posts(archive)
    assert read.keys() == dump.keys() and stats.counts == dump_stats.counts


def test_a_file_not_in_lines_that_is_not_well_formed_or_a_dialogue_dump_is_one_clear_error(tmp_path, shared):
    """Rows that are not one per line cannot be told apart by lines: a file that is also bad XML, and (not
    rewritten there) a dialogue's Posts.xml / Comments.xml, end in one error naming the file."""
    from lima_data.errors import InputError
    from lima_data.sources.stackexchange import StackExchangeDialogueSource
    from tests.conftest import read_source

    path = _rewritten_forms(shared / "stackexchange" / "coffee" / "Posts.xml", tmp_path)["one_line"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"Posts.xml: its rows are not one per line .* not well-formed XML \(line 2"):
        _read_posts(path)
    site = tmp_path / "history_meta"
    site.mkdir()
    (site / "Posts.xml").write_bytes((shared / "stackexchange" / "history_meta" / "Posts.xml").read_bytes())
    (site / "Comments.xml").write_bytes((shared / "stackexchange" / "history_meta" / "Comments.xml").read_bytes()
                                        .replace(b"\r\n", b"\n").replace(b"\n  <row", b"<row"))
    with pytest.raises(InputError, match=r"Comments.xml: its rows are not one per line"):
        read_source(StackExchangeDialogueSource(), [site])


def test_a_file_error_raised_in_a_worker_process_names_the_file(tmp_path, shared):
    """With ``--workers 2`` an InputError raised in a worker (a Posts.xml that is not XML) could not be
    unpickled (pickle re-called ``__init__`` with the formatted message alone) and the build said "a worker
    process died (killed, or out of memory?)". The error now crosses the process boundary whole."""
    import pickle

    from lima_data.errors import InputError

    error = pickle.loads(pickle.dumps(InputError(tmp_path / "Posts.xml", "not an XML file", 1)))
    assert (str(error), error.path, error.line) == (f"{tmp_path / 'Posts.xml'}:1: not an XML file",
                                                    str(tmp_path / "Posts.xml"), 1)
    folder = tmp_path / "in"
    (folder / "coffee").mkdir(parents=True)
    (folder / "coffee" / "Posts.xml").write_bytes((shared / "stackexchange" / "coffee" / "Posts.xml").read_bytes())
    (folder / "genai").mkdir()
    (folder / "genai" / "Posts.xml").write_text("garbage\n")
    result = build("stackexchange", folder, tmp_path / "out", "--workers", "2")
    assert result.exit_code == 1, result.output
    assert f"error: {folder / 'genai' / 'Posts.xml'}:1: not an XML file" in result.stderr, result.stderr
