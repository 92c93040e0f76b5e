"""Stack Exchange path throughput (issue 7, items 1a and 2).

(a) Posts.xml -> candidates after the LIMA filter chain, in MB/s of XML, side by side in one run with a raw lxml
    ``iterparse`` scan of the same file that only reads each row's attributes (the floor); one process.
(2) One big Posts.xml (the biggest input repeated ``--split-copies`` times more) split into byte-range shards
    (``[sources.stackexchange.reader] shard_bytes``) and built with ``--workers 1`` and ``--workers 2``: the
    read+filter stage's seconds and MB/s (index pass, polars join, range reads, chain) beside the raw scan of the
    same file, and whether both manifests are identical.

Inputs: the real non-meta sites of ../shared/data/stackexchange (coffee, genai, matheducators and beer from its
.7z), each made ``--copies`` times larger by repeating its rows with new ids (benchmarks/bench_scale.py), or the
Posts.xml files given. Figures go to stdout; nothing is asserted.

    .venv/bin/python benchmarks/bench_stackexchange.py [--copies 10] [--split-mb 64] [--split-copies 6] [POSTS_XML ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import scaled_posts  # noqa: E402

from lima_data.build import build  # noqa: E402
from lima_data.filters import build_filter  # noqa: E402
from lima_data.pipeline import Chain, RejectSink  # noqa: E402
from lima_data.recipe import Recipe, load_recipe  # noqa: E402
from lima_data.sources import ReaderStats  # noqa: E402
from lima_data.sources.stackexchange import StackExchangeReader, discover  # noqa: E402

SITES = ("coffee", "genai", "matheducators", "beer.stackexchange.com_2020")


def raw_scan(path: Path) -> int:
    rows = 0
    for _, element in etree.iterparse(str(path), tag="row", resolve_entities=False, no_network=True, load_dtd=False):
        dict(element.attrib)
        rows += 1
        element.clear()
    return rows


def chain_scan(path: Path, recipe) -> int:
    spec = recipe.sources["stackexchange"]
    filters = [build_filter(n, spec.filters.get(n, {}), recipe.seed) for n in spec.chain]
    (dump,) = discover([path])
    with tempfile.TemporaryDirectory() as tmp:
        sink = RejectSink(Path(tmp))
        kept = sum(1 for _ in Chain("stackexchange", filters).run(
            StackExchangeReader(min_answer_score=10).read(dump, ReaderStats(dump.label)), sink))
        sink.close()
    return kept


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def make_inputs(shared: Path, copies: int, tmp: Path) -> list[Path]:
    paths = []
    for site in SITES:
        folder = shared / "stackexchange" / site
        posts = folder / "Posts.xml"
        if not posts.is_file():  # beer: the Posts.xml inside its .7z
            import py7zr

            (archive,) = folder.glob("*.7z")
            with py7zr.SevenZipFile(archive) as z:
                z.extract(path=tmp / "extracted" / site, targets=["Posts.xml"])
            posts = tmp / "extracted" / site / "Posts.xml"
        name = site.split(".")[0].split("_")[0]
        target = tmp / f"{name}-x{copies}" / name / "Posts.xml"
        target.parent.mkdir(parents=True)
        scaled_posts(posts, target, copies)
        paths.append(target)
    return paths


def bench_chain(paths: list[Path]) -> None:
    recipe = load_recipe("lima")
    chain_scan(paths[0], recipe)  # warm-up: imports, language model
    print(f"(a) {'file':42} {'MB':>6} {'raw MB/s':>9} {'chain MB/s':>11} {'ratio':>6}")
    total_mb = total_raw = total_chain = 0.0
    for path in paths:
        mb = path.stat().st_size / 1e6
        raw = chained = float("inf")
        for _ in range(3):  # interleaved, best of 3 each: a shared machine's speed drifts between runs
            raw = min(raw, best_of(1, lambda: raw_scan(path)))
            chained = min(chained, best_of(1, lambda: chain_scan(path, recipe)))
        total_mb, total_raw, total_chain = total_mb + mb, total_raw + raw, total_chain + chained
        print(f"(a) {str(path)[-42:]:42} {mb:6.1f} {mb / raw:9.1f} {mb / chained:11.1f} {raw / chained:6.2f}")
    print(f"(a) {'all files':42} {total_mb:6.1f} {total_mb / total_raw:9.1f} {total_mb / total_chain:11.1f} "
          f"{total_raw / total_chain:6.2f}  (target >= 0.5)")


def bench_split(path: Path, split_mb: float, tmp: Path) -> None:
    mb = path.stat().st_size / 1e6
    raw = best_of(1, lambda: raw_scan(path))
    print(f"(2) {path.parent.name} {mb:.0f} MB: raw iterparse scan {raw:.1f} s, {mb / raw:.1f} MB/s")
    outputs = {}
    for workers in (1, 2):
        raw = min(raw, best_of(1, lambda: raw_scan(path)))
        recipe = load_recipe("lima")
        recipe.data["sources"]["stackexchange"].setdefault("reader", {})["shard_bytes"] = int(split_mb * 2**20)
        recipe = Recipe(recipe.path, recipe.data)  # the typed recipe is built from the data
        out = tmp / f"split-{workers}"
        result = build(recipe, inputs=[path.parent], sources=["stackexchange"], out_dir=out, quiet=True,
                       workers=workers)
        seconds = json.loads((result.path / "report" / "stats.json").read_text())["timings"]["read+filter"]
        outputs[workers] = (result.path / "train.jsonl").read_bytes()
        ranges = len(list((out / ".lima-cache").glob("[0-9a-f]*")))
        print(f"(2) {ranges} ranges of {split_mb:g} MiB, --workers {workers}: index + join + range reads + chain "
              f"{seconds:.1f} s, {mb / seconds:.1f} MB/s, {raw / seconds:.2f} of the raw scan (best of its runs)")
    print(f"(2) manifests identical with 1 and 2 workers: {outputs[1] == outputs[2]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--split-mb", type=float, default=64)
    parser.add_argument("--split-copies", type=int, default=6, help="(2) reads the biggest input this many times over")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.paths or make_inputs(args.shared, args.copies, Path(tmp))
        bench_chain(paths)
        biggest = max(paths, key=lambda p: p.stat().st_size)
        if args.split_copies > 1:  # a file big enough that starting the workers does not count
            big = Path(tmp) / f"split-x{args.split_copies}" / biggest.parent.name / "Posts.xml"
            big.parent.mkdir(parents=True)
            scaled_posts(biggest, big, args.split_copies)
            biggest = big
        bench_split(biggest, args.split_mb, Path(tmp))


if __name__ == "__main__":
    main()
