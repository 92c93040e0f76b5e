"""Fuzz whole builds on real-shaped inputs: real rows of the shared sample data, mutated, built with the CLI.

Each case copies a real input (a Stack Exchange Posts.xml, a Pushshift .zst, a Reddit CSV, wikiHow pages, an
authored JSONL), applies one kind of mutation to a few of its rows (seeded), and runs

    lima-data build --recipe lima --sources SOURCE --input CASE_DIR --out OUT -q --allow-empty [--workers 2]

(``--recipe`` picks another recipe; ``--allow-empty``: a case whose every row is dropped still writes its report)

in a subprocess with a time limit. A case passes when the build exits 0, or exits 1 with one ``error:`` line that
names the input file (and no traceback), or, with ``--strict``, says the quotas were not filled (``short``).
Anything else is reported: ``crash`` (a traceback or another exit
status), ``unnamed`` (an error line that names no input file), ``hang`` (over ``--timeout`` seconds, 20 by
default). Failing cases are kept under ``--keep`` to be replayed.

    PYTHONPATH=$PWD python benchmarks/fuzz_build.py --source all --rounds 2 --seed 1 --keep /tmp/fuzz-fail

Not a test (it runs a build per case, ~3 s each); ``tests/test_fuzz_rows.py`` holds the small seeded version and
the regression tests of what this found.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import zstandard

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "lima_data" / "samples"

# ---------------------------------------------------------------------------------------------- text mutations
#: HTML-level fragments (escaped into the XML attribute when used in a Stack Exchange Body).
SOUP = ["<p>", "</p>", "<div>", "</div>", "<pre><code>", "</code></pre>", "<code>", "</code>", '<ol start="3">',
        "<ol start=\"\u00b2\">", '<ol start="\u0663">', "<li>", "</li>", "<ul>", "</ul>", "<table>", "<tr>",
        '<td colspan="\u2460">', '<td rowspan="99999999999999999999">', "</td>", '<a href="javascript:x">', "</a>",
        '<img src="x" alt="', "<!--", "-->", "<![CDATA[", "]]>", "<script>", "</script>", "<svg><math>", "<br>",
        "<hr/>", "<h1>", "</h7>", "<blockquote>", "</blockquote>", "<strike>", "<kbd>", "<sup>", "<", ">", "&",
        "&amp;", "&nbsp;", "&#xD800;", "&#0;", "&#x110000;", "&#99999999999;", "&foo;", "&lt;", "```", "~~~", "\n",
        "\r\n", "    ", "\t", "*", "_", "#", "[x](y)", "![i](j)", "\u200f", "\u202e", "\U0001f600", "\ufeff",
        "\u2028", "text ", "http://example.com/ ", "a" * 50, "\\", "|", "-" * 5]


def soup(rnd: random.Random, n: int = 60) -> str:
    return "".join(rnd.choice(SOUP) for _ in range(n))


def deep(rnd: random.Random) -> str:
    tag = rnd.choice(["div", "blockquote", "b", "ul><li", "ol><li", "span", "table><tr><td", "p", "i", "pre", "code",
                      "sup", "a"])
    depth = rnd.choice([250, 400, 1000, 5000])
    closing = "".join(f"</{t}>" for t in reversed(tag.split("><")))
    mid = "text " * 300
    return f"<{tag}>" * depth + mid + (closing * depth if rnd.random() < 0.5 else "")


def text_mutation(rnd: random.Random, kind: str, original: str) -> str:
    """A mutated text (plain characters: the caller escapes it for its format)."""
    if kind == "soup":
        return soup(rnd)
    if kind == "soup_in":
        cut = rnd.randrange(len(original) + 1)
        return original[:cut] + soup(rnd, 20) + original[cut:]
    if kind == "deep":
        return deep(rnd)
    if kind == "huge":
        unit = rnd.choice(["<p>" + "word " * 200 + "</p>\n", "x" * 1000, "<pre><code>" + "y = 1\n" * 100 + "</code></pre>",
                           "`" * 1000, "*_" * 500, "<b>" * 500])
        return unit * (10_000_000 // len(unit))
    if kind == "empty":
        return rnd.choice(["", " ", "\n", "<p></p>", "<br>", "\u200b", "<!-- -->"])
    if kind == "control":
        return "".join(rnd.choice([chr(c) for c in range(32)] + ["\x7f", "\x85", "x"]) for _ in range(80)) + original
    if kind == "unicode":
        extra = ["\U0001f600", "\U00020000", "\u200f", "\u202e", "\u202d", "\u0663", "\u00b2", "\u2460", "\ufeff",
                 "\ufffe", "\uffff", "\u0301" * 50, "\u05d0", "\u0627", "\U000e0001", "\u00a0", "\u3000"]
        return "".join(rnd.choice(extra) + w for w in original.split(" "))
    if kind == "regex":
        # inputs that make naive regexes backtrack: long runs of one character of a markup construct
        unit = rnd.choice(["a" * 30000 + "!", " " * 30000 + "x", "\n" * 20000, "*" * 20000, "[" * 20000,
                           "](" * 10000, "<" * 20000, "&" * 20000, "`" * 20000, "http://" + "a." * 20000,
                           "-" * 20000 + "\n", "# " * 20000, "1. " * 20000, "> " * 20000, "\\" * 20000,
                           "a@" * 20000, "x " * 30000, "I " * 20000, ".\n" * 20000, "'" * 20000, "(" * 20000])
        return original + unit
    raise ValueError(kind)


TEXT_KINDS = ["soup", "soup_in", "deep", "huge", "empty", "control", "unicode", "regex"]
NUMBERS = ["-5", "0", str(2**70), str(-(2**70)), "1" * 5000, "abc", "", " 12 ", "1e5", "12.5", "\u0663\u0663",
           "NaN", "inf", "-0", "0x10", "+7", "99999999999999999999999"]
DATES = ["", "garbage", "9999-99-99T99:99:99.999", "2015-01-27", "1900-01-01T00:00:00.000", "0001-01-01T00:00:00",
         "2015-01-27T20:09:32.720Z", "2015-01-27T20:09:32.720+05:00", "\u0662\u0660\u0661\u0665-01-01T00:00:00.000",
         "-1", "1e20", str(2**70)]


def xml_text(text: str) -> str:
    """``text`` as the inside of a double-quoted XML attribute; characters XML 1.0 forbids are written as the
    character references a careless exporter writes (``&#1;``, ``&#xD800;``)."""
    out = []
    for ch in escape(text, {'"': "&quot;", "\n": "&#xA;", "\r": "&#xD;", "\t": "&#x9;"}):
        code = ord(ch)
        if code < 32 or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
            out.append(f"&#{code};")
        else:
            out.append(ch)
    return "".join(out)


# -------------------------------------------------------------------------------------------- Stack Exchange
#: The share of Stack Exchange cases written as a .7z archive (``--seven-zip``).
SEVEN_ZIP_SHARE = 0.25
NEUTRAL = re.compile(r"\b(I|I'm|I've|I'd|I'll|me|my|mine|myself|we|our|us|mentioned|answer|answers|edit|"
                     r"stack ?exchange|question|comment|comments|upvote|downvote)\b", re.I)
ATTR = re.compile(r'(\w+)="([^"]*)"')
SE_KINDS = ["body_" + k for k in TEXT_KINDS] + [
    "title", "tags", "score", "dates", "ids", "dup_ids", "answers_first", "orphans", "crlf", "bom_mid", "truncated",
    "charrefs", "entities", "attr_order", "xml_broken", "post_type", "accepted", "no_rows", "huge_title"]


def se_case(rnd: random.Random, kind: str, src: Path, out: Path) -> Path:
    text = src.read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    rows = [i for i, line in enumerate(lines) if line.lstrip().startswith("<row ")]
    picked = rnd.sample(rows, min(len(rows), 8))

    def set_attr(i: int, name: str, raw_value: str) -> None:
        line = lines[i]
        if re.search(rf' {name}="[^"]*"', line):
            lines[i] = re.sub(rf' {name}="[^"]*"', lambda m: f' {name}="{raw_value}"', line, count=1)
        else:
            lines[i] = line.replace("<row ", f'<row {name}="{raw_value}" ', 1)

    def get(i: int, name: str) -> str | None:
        m = re.search(rf' {name}="([^"]*)"', lines[i])
        return m.group(1) if m else None

    if kind.startswith("body_"):
        import html

        # answers that pass the recipe's first filters reach the HTML conversion: long, high-scoring answers with
        # their first-person words and site references taken out (the mutation then lands in `clean` and later)
        answers = [i for i in rows if get(i, "PostTypeId") == "2" and int(get(i, "Score") or 0) >= 10
                   and len(get(i, "Body") or "") >= 1500]
        targets = rnd.sample(answers, min(len(answers), 4)) + picked[:2]
        for i in targets:
            body = NEUTRAL.sub("the", html.unescape(get(i, "Body") or ""))
            mutated = text_mutation(rnd, kind[5:], body)
            if kind in ("body_soup", "body_deep", "body_empty") and i in answers:
                cut = rnd.randrange(len(body) + 1)
                mutated = body[:cut] + mutated + body[cut:]
            set_attr(i, "Body", xml_text(mutated))
            if kind == "body_huge":
                break
    elif kind in ("title", "huge_title"):
        for i in picked:
            if kind == "huge_title":
                set_attr(i, "Title", xml_text("How " + "x" * 2_000_000 + "?"))
            else:
                set_attr(i, "Title", xml_text(text_mutation(rnd, rnd.choice(["soup", "control", "unicode", "empty",
                                                                             "regex"]), get(i, "Title") or "")))
    elif kind == "tags":
        for i in picked:
            set_attr(i, "Tags", xml_text(rnd.choice(["|a|b|", "||", "<<>>", "", "<" * 1000, "|" * 1000,
                                                     "<a><" + "b" * 100000 + ">", "\u202e<x>", "<c#><c++><.net>"])))
    elif kind == "score":
        for i in picked:
            set_attr(i, rnd.choice(["Score", "ViewCount", "AnswerCount", "CommentCount", "FavoriteCount"]),
                     xml_text(rnd.choice(NUMBERS)))
    elif kind == "dates":
        for i in picked:
            set_attr(i, rnd.choice(["CreationDate", "LastActivityDate", "LastEditDate", "ClosedDate",
                                    "CommunityOwnedDate"]), xml_text(rnd.choice(DATES)))
    elif kind in ("ids", "accepted", "post_type"):
        name = {"ids": ["Id", "ParentId"], "accepted": ["AcceptedAnswerId", "ParentId"],
                "post_type": ["PostTypeId"]}[kind]
        for i in picked:
            value = rnd.choice(NUMBERS + ["1", "2", "3", "8", "9"])
            set_attr(i, rnd.choice(name), xml_text(value))
    elif kind == "dup_ids":
        for i in picked:
            j = rnd.choice(rows)
            set_attr(i, "Id", get(j, "Id") or "1")
    elif kind == "answers_first":
        body = [lines[i] for i in rows]
        body.sort(key=lambda line: (' PostTypeId="1"' in line, rnd.random()))
        for i, line in zip(rows, body):
            lines[i] = line
    elif kind == "orphans":
        for i in picked:
            if get(i, "PostTypeId") == "2":
                set_attr(i, "ParentId", str(10**9 + i))
            else:  # a question removed: its answers become orphans
                lines[i] = ""
    elif kind == "crlf":
        out_dir = out / src.parent.name
        out_dir.mkdir(parents=True)
        (out_dir / "Posts.xml").write_bytes("\r\n".join(lines).encode("utf-8"))
        return out_dir
    elif kind == "bom_mid":
        for i in picked:
            lines[i] = "\ufeff" + lines[i]
    elif kind == "truncated":
        data = "\n".join(lines).encode("utf-8")
        cut = rnd.randrange(len(data) // 2, len(data))
        out_dir = out / src.parent.name
        out_dir.mkdir(parents=True)
        (out_dir / "Posts.xml").write_bytes(data[:cut])
        return out_dir
    elif kind == "charrefs":
        for i in picked:
            refs = rnd.choice(["&#1;", "&#x1F;", "&#0;", "&#xD800;", "&#xDFFF;", "&#x110000;", "&#99999999999999;",
                               "&#xFFFE;", "&#x1F600;", "&#128512;", "&#x;", "&#;", "&#x0041"])
            set_attr(i, rnd.choice(["Body", "Title", "Tags"]), (get(i, "Body") or "") + refs * 3)
    elif kind == "entities":
        for i in picked:
            ent = rnd.choice(["&nbsp;", "&eacute;", "&foo;", "&amp;amp;amp;", "&amp;nbsp;", "&amp;#xD800;",
                              "&amp;#0;", "&amp;#x110000;", "&amp;#99999999999;", "&lt;!ENTITY x 'y'&gt;", "&;", "&",
                              "&amp;lt;script&amp;gt;"])
            set_attr(i, "Body", (get(i, "Body") or "") + ent * 5)
    elif kind == "attr_order":
        for i in picked:
            attrs = ATTR.findall(lines[i])
            rnd.shuffle(attrs)
            quote = rnd.choice(['"', "'"])
            lines[i] = "  <row " + " ".join(f"{k}={quote}{v}{quote}" for k, v in attrs) + " />"
    elif kind == "xml_broken":
        for i in picked:
            lines[i] = rnd.choice([lines[i].replace("/>", ">"), lines[i].replace(' Body="', ' Body="<'),
                                   lines[i] + lines[i], lines[i].replace('Id="', 'Id="1" Id="', 1), "<row", "</posts>",
                                   "<row Id=\"5\" PostTypeId=\"1\" />", "<!DOCTYPE x [<!ENTITY a 'b'>]>",
                                   lines[i].replace(" ", "\n", 3), "<?xml version='1.0'?>", "garbage \x00 bytes"])
    elif kind == "no_rows":
        lines = [lines[0], "<posts>", "</posts>"] if rnd.random() < 0.5 else [""]
    else:
        raise ValueError(kind)
    out_dir = out / src.parent.name
    out_dir.mkdir(parents=True)
    (out_dir / "Posts.xml").write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    if rnd.random() < SEVEN_ZIP_SHARE:  # the same rows in the dump's own form: <site>.stackexchange.com.7z
        import py7zr

        archive = out / f"{src.parent.name}.stackexchange.com.7z"
        with py7zr.SevenZipFile(archive, "w") as seven:
            seven.write(out_dir / "Posts.xml", "Posts.xml")
        shutil.rmtree(out_dir)
        return out
    return out_dir


# ---------------------------------------------------------------------------------------------------- Reddit
JSON_KINDS = ["text", "numbers", "types", "deep_json", "big_int", "bad_json", "fields_missing", "surrogates"]


def json_mutation(rnd: random.Random, kind: str, row: dict, text_fields: list[str], num_fields: list[str]) -> str:
    """One mutated JSON line of ``row``."""
    row = dict(row)
    if kind == "text":
        for field in rnd.sample(text_fields, min(2, len(text_fields))):
            row[field] = text_mutation(rnd, rnd.choice(TEXT_KINDS), str(row.get(field) or ""))
    elif kind == "numbers":
        for field in num_fields:
            row[field] = rnd.choice([-5, 2**70, -(2**70), 1e308, -1e308, "12", "abc", None, True, 12.5, [], {}])
    elif kind == "types":
        for field in rnd.sample(list(row), min(5, len(row))):
            row[field] = rnd.choice([None, 1, 1.5, True, [], {}, ["x"], {"a": 1}, "", "x" * 10])
    elif kind == "deep_json":
        field = rnd.choice(list(row))
        depth = rnd.choice([1000, 100_000])
        return json.dumps(row)[:-1] + f', "{field}x": ' + "[" * depth + "]" * depth + "}"
    elif kind == "big_int":
        return json.dumps(row)[:-1] + ', "score2": ' + "9" * 5000 + "}"
    elif kind == "bad_json":
        return rnd.choice([json.dumps(row)[:-5], "[1, 2]", "null", "\"x\"", "{", "NaN", json.dumps(row) + " x",
                           "\x00" * 10, "{\"a\": NaN}", "{\"score\": Infinity}", "{\"a\": 1, \"a\": 2}"])
    elif kind == "fields_missing":
        for field in rnd.sample(list(row), min(len(row) // 2 + 1, len(row))):
            del row[field]
    elif kind == "surrogates":
        line = json.dumps(row)
        return line.replace("\"title\": \"", "\"title\": \"\\ud800\\udfff\\udc00x", 1).replace(
            "\"body\": \"", "\"body\": \"\\ud83d", 1)
    return json.dumps(row, default=str)


#: Faults of a whole file, in a build over two sites (the other one intact): the kinds of damage a download, a
#: Windows tool or a re-serialising script leaves (issue 15, "faults you have not seen").
SE_FILE_KINDS = ["file_empty", "file_decl_only", "file_one_line", "file_wrapped", "file_utf16", "file_cut_7z",
                 "file_cut_mid_row", "file_broken_link", "file_other_archive"]


def se_file_case(rnd: random.Random, kind: str, srcs: list[Path], out: Path) -> Path:
    """Two real sites under ``out``: one intact, one whose Posts.xml (or .7z) has the whole-file fault ``kind``."""
    import os

    import py7zr
    from lxml import etree

    good, bad = rnd.sample(srcs, 2)
    (out / good.parent.name).mkdir(parents=True)
    shutil.copy(good, out / good.parent.name / "Posts.xml")
    target = out / bad.parent.name / "Posts.xml"
    target.parent.mkdir(parents=True)
    data = bad.read_bytes()
    if kind == "file_empty":
        data = b""
    elif kind == "file_decl_only":
        data = data.split(b"\n", 1)[0] + b"\n"
    elif kind == "file_one_line":
        tree = etree.parse(str(bad))
        for row in tree.getroot():
            row.tail = None
        tree.getroot().text = None
        data = etree.tostring(tree, xml_declaration=True, encoding="utf-8")
    elif kind == "file_wrapped":
        data = re.sub(rb'" (?=[A-Z]\w*=")', b'"\n      ', data)
    elif kind == "file_utf16":
        data = data.decode("utf-8-sig").replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16")
    elif kind == "file_cut_mid_row":
        rows = [m.start() for m in re.finditer(rb"<row ", data)]
        data = data[: rnd.choice(rows[len(rows) // 2:]) + rnd.randrange(5, 200)]
    elif kind in ("file_cut_7z", "file_other_archive"):
        target.write_bytes(data)
        archive = out / (f"{bad.parent.name}.stackexchange.com.7z" if kind == "file_cut_7z"
                         else "stackoverflow.com-Users.7z")
        with py7zr.SevenZipFile(archive, "w") as seven:
            seven.write(target, "Posts.xml" if kind == "file_cut_7z" else "Users.xml")
        shutil.rmtree(target.parent)
        if kind == "file_cut_7z":
            packed = archive.read_bytes()
            archive.write_bytes(packed[: rnd.randrange(32, len(packed) - 1)])
        return out
    elif kind == "file_broken_link":
        os.symlink(out / "nowhere.xml", target)
        return out
    else:
        raise ValueError(kind)
    target.write_bytes(data)
    return out


def zst_rows(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        data = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read()
    return data.decode("utf-8").splitlines()


def reddit_zst_case(rnd: random.Random, kind: str, out: Path) -> Path:
    out_dir = out / "reddit"
    out_dir.mkdir(parents=True)
    wp_ids: list[str] = []
    for name, sub in [("AskMen_submissions.zst", "WritingPrompts"), ("RC_2005-12.zst", None)]:
        lines = zst_rows(DATA / "reddit" / "zst" / name)[:400]
        rows = [json.loads(line) for line in lines]
        # make some rows reach the recipe's subreddits, so their text goes through the chain: submissions become
        # r/WritingPrompts prompts (or AskReddit ones), real comments become their top-level story replies
        for n, row in enumerate(rows[::3]):
            if sub:
                row["subreddit"] = "WritingPrompts" if n % 2 else "AskReddit"
                row["title"] = ("[WP] " if n % 2 else "") + str(row.get("title"))
                row["score"] = 5000
                row["over_18"] = False
                if n % 2:
                    wp_ids.append(str(row.get("id")))
            else:
                row["subreddit"] = "WritingPrompts"
                row["body"] = (row.get("body") or "") + " The story went on and on." * 40
                row["score"] = 900
                row["link_id"] = row["parent_id"] = "t3_" + wp_ids[n % len(wp_ids)]
        lines = [json.dumps(row) for row in rows]
        for i in rnd.sample(range(len(lines)), 12):
            lines[i] = json_mutation(rnd, kind, rows[i], ["title", "selftext", "body", "author", "id", "subreddit"],
                                     ["score", "created_utc", "num_comments", "over_18"])
        data = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        if kind == "bad_json" and rnd.random() < 0.3:
            data = data[: len(data) * 2 // 3]  # truncated stream
        packed = zstandard.ZstdCompressor().compress(data)
        if kind == "bad_json" and rnd.random() < 0.3:
            packed = packed[: rnd.randrange(len(packed) // 2, len(packed))]  # a download cut inside the frame
        (out_dir / name).write_bytes(packed)
    # pair the submissions with comments: real comment rows pointed at them
    return out_dir


CSV_KINDS = ["cell_text", "cell_numbers", "columns", "csv_syntax", "huge_field", "nul", "bom_mid", "crlf_mix"]


def reddit_csv_case(rnd: random.Random, kind: str, out: Path) -> Path:
    out_dir = out / "reddit"
    out_dir.mkdir(parents=True)
    for name in ("writingprompts.csv", "askreddit.csv"):
        text = (DATA / "reddit" / "top_posts_csv" / name).read_text(encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        header, body = rows[0], rows[1:200]
        picked = rnd.sample(range(len(body)), 10)
        for i in picked:
            row = body[i]
            if kind == "cell_text":
                for col in ("title", "body"):
                    j = header.index(col)
                    row[j] = text_mutation(rnd, rnd.choice(TEXT_KINDS[:3] + TEXT_KINDS[4:]), row[j])
            elif kind == "cell_numbers":
                for col in ("score", "created_utc", "num_comments", "is_nsfw", "upvote_ratio"):
                    row[header.index(col)] = rnd.choice(NUMBERS + DATES + ["True", "yes", "FALSE"])
            elif kind == "columns":
                body[i] = rnd.choice([row[:3], row + ["extra", "x"], [], [""], row[:-1]])
            elif kind == "huge_field":
                row[header.index("body")] = "word " * 60000
            elif kind == "nul":
                row[header.index("title")] = "a\x00b" + row[header.index("title")]
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header] + body)
        data = buf.getvalue()
        if kind == "csv_syntax":
            lines = data.split("\n")
            for i in picked:
                lines[i + 1] = rnd.choice(['"unterminated,' + lines[i + 1], lines[i + 1].replace(",", ";"),
                                           lines[i + 1] + '"', '""""', "\\", "x" * 100])
            data = "\n".join(lines)
        elif kind == "bom_mid":
            lines = data.split("\n")
            for i in picked:
                lines[i + 1] = "\ufeff" + lines[i + 1]
            data = "\n".join(lines)
        elif kind == "crlf_mix":
            data = data.replace("\n", rnd.choice(["\r\n", "\r"]), 50)
        (out_dir / name).write_text(data, encoding="utf-8", errors="surrogatepass")
    return out_dir


# ---------------------------------------------------------------------------------------------------- wikiHow
WH_KINDS = ["wh_" + k for k in ["soup", "deep", "huge", "empty", "control", "unicode", "regex"]] + [
    "wh_truncated", "wh_categories", "wh_title", "wh_binary", "wh_no_steps"]


def wikihow_case(rnd: random.Random, kind: str, out: Path) -> Path:
    out_dir = out / "wikihow"
    out_dir.mkdir(parents=True)
    pages = sorted((DATA / "wikihow" / "html_pages_2020").glob("*.html"))
    for page in rnd.sample(pages, 4):
        data = page.read_bytes()
        text = data.decode("utf-8", "surrogateescape")
        if kind in ("wh_soup", "wh_deep", "wh_huge", "wh_empty", "wh_control", "wh_unicode", "wh_regex"):
            # inside a step: after the first step's opening tag
            steps = [m.end() for m in re.finditer(r'<div class="step">', text)] or [len(text) // 2]
            for at in sorted(rnd.sample(steps, min(3, len(steps))), reverse=True):
                fragment = text_mutation(rnd, kind[3:], "")
                if kind == "wh_huge":
                    fragment = fragment[:1_000_000]  # 3 per page: 10 MB of nested tags is ~40 s of bs4 (linear)
                text = text[:at] + fragment + text[at:]
        elif kind == "wh_truncated":
            text = text[: rnd.randrange(len(text))]
        elif kind == "wh_categories":
            new = rnd.choice([
                '"wgCategories":[]', '"wgCategories":null', '"wgCategories":[1,2]', '"wgCategories":"x"',
                '"wgCategories":["\\ud800"]', '"wgCategories":[' + '[' * 5000 + ']' * 5000 + ']',
                '"wgCategories":["' + "x" * 100000 + '"]', '"wgCategories":["a"', '"wgTitle":"\\u12"',
                '"wgTitle":"\\ud800"', '"wgTitle":1'])
            text = re.sub(r'"wgCategories":\[[^\]]*\]', lambda m: new, text, count=1)
        elif kind == "wh_title":
            new = rnd.choice(["", "<title></title>", "<title>\x00</title>", "<title>" + "How to " * 50000 + "</title>",
                              "<title>\u202e\U0001f600</title>"])
            text = re.sub(r"<title>.*?</title>", lambda m: new, text, count=1, flags=re.S)
            text = re.sub(r'"wgTitle":"[^"]*"', lambda m: rnd.choice(['"wgTitle":"\\u12"', '"wgTitle":"\\ud800"',
                                                                     '"wgTitle":1', '"wgTitle":""']), text, count=1)
        elif kind == "wh_binary":
            raw = bytearray(data)
            for _ in range(50):
                raw[rnd.randrange(len(raw))] = rnd.randrange(256)
            (out_dir / page.name).write_bytes(bytes(raw))
            continue
        elif kind == "wh_no_steps":
            text = re.sub(r'<div class="step">.*?</div>', "", text, flags=re.S)
        (out_dir / page.name).write_bytes(text.encode("utf-8", "surrogateescape"))
    return out_dir


# --------------------------------------------------------------------------------------------------- authored
def authored_case(rnd: random.Random, kind: str, out: Path) -> Path:
    out_dir = out / "authored"
    out_dir.mkdir(parents=True)
    lines = (SAMPLES / "authored" / "lima_train_slice.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    for i in rnd.sample(range(len(lines)), 6):
        row = rows[i]
        if kind == "text":
            conv = list(row["conversations"])
            j = rnd.randrange(len(conv))
            conv[j] = text_mutation(rnd, rnd.choice(TEXT_KINDS), conv[j])
            lines[i] = json.dumps({**row, "conversations": conv})
        elif kind == "types":
            lines[i] = json.dumps(rnd.choice([
                {**row, "conversations": rnd.choice([None, "x", [], [1, 2], [None], [["a"]], [{"a": 1}], {"a": "b"}])},
                {**row, "source": rnd.choice([None, 1, [], ""])},
                {"messages": rnd.choice([[{"role": "user"}], [{"role": 1, "content": "x"}], [{"content": "x"}],
                                         [{"role": "user", "content": ["a"]}], "x", [{"role": "system", "content": "s"}],
                                         [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]])},
                {**row, "id": rnd.choice([None, 1, [], "", "x" * 10000, "a/b/../c", "\x00"])},
            ]))
        else:
            lines[i] = json_mutation(rnd, kind, row, ["source"], [])
    (out_dir / "authored.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    return out_dir


# -------------------------------------------------------------------------------------------------- the runner
def run_case(case: Path, source: str, out: Path, timeout: float, workers: int, recipe: str = "lima",
             strict: bool = False) -> tuple[str, float, str]:
    """Build ``case`` with ``recipe`` (``--strict`` with ``strict``); return (outcome, seconds, stderr tail)."""
    cli = "import sys; from lima_data.cli import main; sys.argv[0] = 'lima-data'; sys.exit(main())"
    cmd = [sys.executable, "-c", cli, "build", "--recipe", recipe, "--sources", source, "--input", str(case),
           "--out", str(out), "-q", "--allow-empty"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    if strict:
        cmd.append("--strict")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, errors="replace")
    except subprocess.TimeoutExpired:
        return "hang", time.perf_counter() - started, ""
    seconds = time.perf_counter() - started
    err = proc.stderr
    if "Traceback" in err or proc.returncode not in (0, 1):
        return "crash", seconds, err[-3000:]
    if proc.returncode == 1:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        if len(lines) == 1 and lines[0].startswith("error: strict: quotas not filled"):
            return "short", seconds, lines[0][:300]  # --strict on a small case: expected
        if len(lines) != 1 or str(case) not in lines[0]:
            return "unnamed", seconds, err[-1500:]
        return "error", seconds, lines[0][:300]
    return "ok", seconds, ""


def cases(source: str) -> list[tuple[str, str, object]]:
    """(build source name, mutation kind, case maker) for ``source``."""
    out = []
    if source in ("stackexchange", "all"):
        srcs = [DATA / "stackexchange" / "coffee" / "Posts.xml", SAMPLES / "stackexchange" / "genai" / "Posts.xml"]
        out += [("stackexchange", k, lambda r, k, o, s=srcs: se_case(r, k, r.choice(s), o)) for k in SE_KINDS]
        out += [("stackexchange", k, lambda r, k, o, s=srcs: se_file_case(r, k, s, o)) for k in SE_FILE_KINDS]
    if source in ("reddit", "all"):
        out += [("reddit", k, reddit_zst_case) for k in JSON_KINDS]
        out += [("reddit", k, reddit_csv_case) for k in CSV_KINDS]
    if source in ("wikihow", "all"):
        out += [("wikihow", k, wikihow_case) for k in WH_KINDS]
    if source in ("authored", "all"):
        out += [("authored", k, authored_case) for k in ["text", "types"] + JSON_KINDS[1:]]
    return out


def main(argv: list[str] | None = None) -> int:
    global SEVEN_ZIP_SHARE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="all", choices=["all", "stackexchange", "reddit", "wikihow", "authored"])
    parser.add_argument("--rounds", type=int, default=1, help="passes over every mutation kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a build counts as a hang")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strict", action="store_true", help="build with --strict (a bad row is an error)")
    parser.add_argument("--recipe", default="lima", help="recipe every case is built with (lima-release, ...)")
    parser.add_argument("--only", default="", help="comma-separated mutation kinds to run")
    parser.add_argument("--skip", default="", help="comma-separated mutation kinds not to run")
    parser.add_argument("--seven-zip", type=float, default=SEVEN_ZIP_SHARE,
                        help="share of Stack Exchange cases written as <site>.stackexchange.com.7z")
    parser.add_argument("--keep", type=Path, help="folder where failing cases are kept")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    SEVEN_ZIP_SHARE = args.seven_zip
    skip = set(filter(None, args.skip.split(",")))
    tally: dict[str, int] = {}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="fuzz-build-") as tmp:
        for round_ in range(args.rounds):
            for n, (source, kind, make) in enumerate(cases(args.source)):
                if (only and kind not in only) or kind in skip:
                    continue
                rnd = random.Random(f"{args.seed}/{round_}/{source}/{kind}/{n}")
                work = Path(tmp) / f"r{round_}-{n}-{kind}"
                case = make(rnd, kind, work / "in")
                outcome, seconds, tail = run_case(case, source, work / "out", args.timeout, args.workers,
                                                   args.recipe, args.strict)
                tally[outcome] = tally.get(outcome, 0) + 1
                print(f"{outcome:8s} {seconds:6.1f}s {source:13s} {kind:16s} {tail.splitlines()[-1][:150] if tail else ''}",
                      flush=True)
                if outcome in ("crash", "unnamed", "hang"):
                    failures += 1
                    if tail:
                        print("    " + tail.replace("\n", "\n    ")[-2500:], flush=True)
                    if args.keep:
                        dest = args.keep / work.name
                        shutil.rmtree(dest, ignore_errors=True)
                        shutil.copytree(work / "in", dest)
                shutil.rmtree(work, ignore_errors=True)
    print("tally:", json.dumps(tally, sort_keys=True))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
