"""Scale benchmarks (issue 7):

(b) peak RSS of the Stack Exchange path (reader + LIMA chain) on a Posts.xml at 1x and 10x its size, the 10x made
    by repeating the real rows with new ids (each copy's Id / ParentId / AcceptedAnswerId shifted), each size in a
    fresh process; then the same files built as 1 MiB byte ranges with 2 workers (peak RSS of the main process and
    of the largest worker);
(c) the Reddit path in MB/s of decompressed NDJSON beside a raw zstd + json.loads scan of the same file: a
    Pushshift file made by concatenating the real AskMen submissions and RC_2005-12 comments N times; once with
    LIMA's subreddits (none of these rows is wanted: the reader skips them) and once reading every row (AskMen
    and reddit.com wanted).

    .venv/bin/python benchmarks/bench_scale.py [--copies 10] [--shared DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

SHIFT_ATTRS = re.compile(rb' (Id|ParentId|AcceptedAnswerId)="(\d+)"')


def scaled_posts(src: Path, dst: Path, copies: int) -> None:
    lines = src.read_bytes().splitlines(keepends=True)
    head = [l for l in lines if not l.lstrip().startswith(b"<row") and not l.lstrip().startswith(b"</posts")]
    rows = [l for l in lines if l.lstrip().startswith(b"<row")]
    offset = 10 ** (len(str(max(int(m) for m in re.findall(rb' Id="(\d+)"', b"".join(rows))))) + 1)
    with open(dst, "wb") as out:
        out.writelines(head)
        for k in range(copies):
            shift = k * offset
            for row in rows:
                out.write(SHIFT_ATTRS.sub(lambda m: b' %s="%d"' % (m.group(1), int(m.group(2)) + shift), row))
        out.write(b"</posts>\n")


CHILD = r"""
import resource, sys, tempfile, time
from pathlib import Path
from lima_data.filters import build_filter
from lima_data.pipeline import Chain, RejectSink
from lima_data.recipe import Recipe, load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover
recipe = load_recipe("lima")
spec = recipe.sources["stackexchange"]
filters = [build_filter(n, spec.filters.get(n, {}), 0) for n in spec.chain]
(dump,) = discover([sys.argv[1]])
start = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    sink = RejectSink(Path(tmp))
    kept = sum(1 for _ in Chain("stackexchange", filters).run(
        StackExchangeReader(min_answer_score=10).read(dump, ReaderStats("x")), sink))
    sink.close()
print(kept, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


SPLIT_CHILD = r"""
import json, resource, sys, tempfile
from pathlib import Path
from lima_data.build import build
from lima_data.recipe import Recipe, load_recipe
recipe = load_recipe("lima")
recipe.data["sources"]["stackexchange"].setdefault("reader", {})["shard_bytes"] = int(sys.argv[2])
recipe = Recipe(recipe.path, recipe.data)  # the typed recipe is built from the data
with tempfile.TemporaryDirectory() as tmp:
    result = build(recipe, inputs=[Path(sys.argv[1]).parent], sources=["stackexchange"], out_dir=tmp, quiet=True,
                   workers=2)
    seconds = json.loads((result.path / "report" / "stats.json").read_text())["timings"]["read+filter"]
print(seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def bench_rss(shared: Path, copies: int) -> None:
    src = shared / "stackexchange" / "matheducators" / "Posts.xml"
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for n in (1, copies):
            site = Path(tmp) / f"x{n}" / "matheducators"
            site.mkdir(parents=True)
            scaled_posts(src, site / "Posts.xml", n)
            out = subprocess.run([sys.executable, "-c", CHILD, str(site / "Posts.xml")], capture_output=True,
                                 text=True, check=True).stdout.split()
            mb = (site / "Posts.xml").stat().st_size / 1e6
            figures[n] = float(out[2])
            print(f"(b) {n:>2}x Posts.xml {mb:7.1f} MB: kept {out[0]:>5}, {float(out[1]):6.1f} s, "
                  f"{mb / float(out[1]):5.1f} MB/s, peak RSS {float(out[2]):6.0f} MiB")
        print(f"(b) peak RSS {copies}x / 1x = {figures[copies] / figures[1]:.2f} (target <= 1.25)")
        split = {}
        for n in (1, copies):
            posts = Path(tmp) / f"x{n}" / "matheducators" / "Posts.xml"
            out = subprocess.run([sys.executable, "-c", SPLIT_CHILD, str(posts), str(1 << 20)], capture_output=True,
                                 text=True, check=True).stdout.split()
            split[n] = max(float(out[1]), float(out[2]))
            print(f"(b) {n:>2}x as 1 MiB byte ranges, 2 workers: read+filter {float(out[0]):5.1f} s, peak RSS "
                  f"main {float(out[1]):.0f} MiB, largest worker {float(out[2]):.0f} MiB")
        print(f"(b) byte ranges: peak RSS of any process {copies}x / 1x = {split[copies] / split[1]:.2f}")


def bench_reddit(shared: Path, copies: int) -> None:
    from lima_data.sources import ReaderStats
    from lima_data.sources.base import discover
    from lima_data.sources.reddit import RedditSource

    raw = b""
    for name in ("AskMen_submissions.zst", "RC_2005-12.zst"):
        with open(shared / "reddit" / "zst" / name, "rb") as fh:
            raw += zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "RS_mixed_submissions.zst"
        path.write_bytes(zstandard.ZstdCompressor(level=3).compress(raw * copies))
        mb = len(raw) * copies / 1e6
        start = time.perf_counter()
        with open(path, "rb") as fh:
            text = io.TextIOWrapper(zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh),
                                    encoding="utf-8")
            rows = sum(1 for line in text if json.loads(line))
        raw_s = time.perf_counter() - start
        print(f"(c) raw zstd + json scan: {rows} rows, {mb:.1f} MB NDJSON, {mb / raw_s:6.1f} MB/s")
        for label, subs in (("LIMA subreddits (nothing wanted)", None), ("every row wanted", ["AskMen", "reddit.com"])):
            source = RedditSource({"subreddits": subs} if subs else None)
            found, _ = discover([path], [source])
            start = time.perf_counter()
            n = sum(1 for _ in source.read(found["reddit"], lambda s: ReaderStats("x"), lambda s: None))
            seconds = time.perf_counter() - start
            print(f"(c) reader, {label}: {n} candidates, {mb / seconds:6.1f} MB/s, "
                  f"{raw_s / seconds:4.2f} of the raw scan (target >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    bench_rss(args.shared, args.copies)
    bench_reddit(args.shared, args.copies)


if __name__ == "__main__":
    main()
