"""How many of LIMA's own Stack Exchange pairs each preset keeps (issue 11).

Turns GAIR-layout rows (``{"conversations": [prompt, response], "source": "stackexchange"}``, as in LIMA's released
``train.jsonl`` or ``../shared/data/lima/lima_train_slice.jsonl``) back into a Stack Exchange ``Posts.xml`` dump:
one question per row (score 100) with its answer (score 50, accepted), the Markdown turned into simple HTML the way
Stack Exchange renders it (markdown-it, CommonMark: a line break in LIMA's text is a paragraph break, fenced code
becomes ``<pre><code>``, ``* `` lists ``<ul>``). The title is the prompt when it is one line of at most 150
characters (the longest a Stack Exchange title can be), else the prompt's first sentence (cut at 150 characters);
the body is the whole prompt. Then every preset's Stack Exchange chain runs over the dump with no quota (selection
is left out: every candidate the chain keeps counts), and the script prints kept / total and the drops by
``filter:reason``, with the prompt forms and lengths of what was kept.

    PYTHONPATH=. .venv/bin/python benchmarks/lima_se_keep.py [GAIR_JSONL ...] [--recipe lima --recipe lima-release]
        [--show filter:reason]   # print the rows dropped for that reason (first 400 characters of the response)
        [--title whole]          # the whole prompt as the title (a converter that does not split title / body)

With no file it reads ../shared/data/lima/lima_train_slice.jsonl (5 Stack Exchange rows). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

from markdown_it import MarkdownIt

from lima_data.filters import build_filter
from lima_data.pipeline import Chain, RejectSink
from lima_data.recipe import load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
_FENCE = re.compile(r"^(```|~~~)")
_MD = MarkdownIt("commonmark").enable("table")


def markdown_to_html(text: str) -> str:
    """LIMA's Markdown as Stack Exchange HTML: single line breaks outside code fences become paragraph breaks."""
    out, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line.strip()):
            fenced = not fenced
            out.append(line)
            continue
        out.append(line if fenced else line + "\n")
    return _MD.render("\n".join(out))


def quoteattr(value: str) -> str:
    """An XML attribute value in double quotes, as the dumps write it (the reader looks for ``Body="``)."""
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


def title_of(prompt: str, mode: str = "sentence") -> str:
    """The question title a prompt implies (see the module docstring); ``mode="whole"``: the whole prompt on one
    line (a converter that does not split title and body)."""
    prompt = prompt.strip()
    if mode == "whole":
        return " ".join(prompt.split())
    if "\n" not in prompt and len(prompt) <= 150:
        return prompt
    first = prompt.split("\n", 1)[0]
    match = re.match(r"(.{10,150}?[?.!])(\s|$)", first)
    if match:
        return match.group(1)
    return first[:150].rsplit(" ", 1)[0] if len(first) > 150 else first


def write_dump(rows: list[dict], folder: Path, title_mode: str = "sentence") -> Path:
    """Write ``rows`` (GAIR layout) as ``folder/lima/Posts.xml`` (site ``lima.stackexchange.com``)."""
    site = folder / "lima"
    site.mkdir(parents=True, exist_ok=True)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for i, row in enumerate(rows):
        prompt, response = row["conversations"][0], row["conversations"][1]
        qid, aid = 2 * i + 1, 2 * i + 2
        date = "2015-01-01T00:00:00.000"
        lines.append(
            f'  <row Id="{qid}" PostTypeId="1" AcceptedAnswerId="{aid}" CreationDate="{date}" Score="100" '
            f'Body={quoteattr(markdown_to_html(prompt))} OwnerUserId="1" Title={quoteattr(title_of(prompt, title_mode))} '
            f'Tags="&lt;lima&gt;" AnswerCount="1" />')
        lines.append(
            f'  <row Id="{aid}" PostTypeId="2" ParentId="{qid}" CreationDate="{date}" Score="50" '
            f'Body={quoteattr(markdown_to_html(response))} OwnerUserId="2" />')
    lines.append("</posts>")
    (site / "Posts.xml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return site


def run(recipe_name: str, dump_dir: Path, total: int, show: str | None) -> None:
    recipe = load_recipe(recipe_name)
    spec = recipe.sources["stackexchange"]
    filters = [build_filter(n, spec.filters.get(n, {}), recipe.seed) for n in spec.chain]
    (dump,) = discover([dump_dir])
    with tempfile.TemporaryDirectory() as tmp:
        sink = _Recorder(Path(tmp))
        chain = Chain("stackexchange", filters)
        kept = list(chain.run(StackExchangeReader(min_answer_score=10).read(dump, ReaderStats(dump.label)), sink))
        sink.close()
    drops = Counter()
    for st in chain.stats:
        for reason, n in st.dropped.items():
            drops[f"{st.name}:{reason}"] += n
    print(f"{recipe_name}: kept {len(kept)} / {total} ({100 * len(kept) / max(total, 1):.1f}%)")
    for key, n in drops.most_common():
        print(f"  dropped {key}: {n}")
    if kept:
        forms = Counter(c.meta.get("prompt_form", c.meta.get("prompt_field")) for c in kept)
        lengths = [len(c.prompt) for c in kept]
        print(f"  prompt forms: {dict(forms)}; prompt chars median {statistics.median(lengths):.0f}, "
              f"max {max(lengths)}, > 150: {sum(n > 150 for n in lengths) / len(lengths):.0%}")
    for key, candidate in sink.dropped:
        if show and key.startswith(show):
            print(f"  --- {key} {candidate.id} value={candidate.values.get(key.split(':')[0])!r}")
            print("   ", candidate.response[:400].replace("\n", "\n    "))


class _Recorder(RejectSink):
    """A reject sink that also keeps the dropped candidates in memory (for ``--show``)."""

    def __init__(self, report_dir: Path):
        super().__init__(report_dir)
        self.dropped = []

    def reject(self, stage, candidate, reason):
        super().reject(stage, candidate, reason)
        self.dropped.append((f"{stage}:{reason}", candidate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--recipe", action="append", dest="recipes")
    parser.add_argument("--show", help="filter:reason whose dropped rows to print")
    parser.add_argument("--title", choices=("sentence", "whole"), default="sentence",
                        help="title of a long prompt: its first sentence (default) or the whole prompt")
    args = parser.parse_args()
    files = args.files or [SHARED / "lima" / "lima_train_slice.jsonl"]
    rows = []
    for path in files:
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.exit(f"{path}:{line_no}: not JSON: {exc}")
            if row.get("source") == "stackexchange":
                rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        dump_dir = write_dump(rows, Path(tmp), args.title)
        for name in args.recipes or ["lima", "lima-release"]:
            run(name, dump_dir, len(rows), args.show)


if __name__ == "__main__":
    main()
