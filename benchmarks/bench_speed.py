"""Issue 15, item 4: `lima-data build --workers 1` on a plain Posts.xml beside a raw lxml iterparse scan of the same
file, whole process (start-up, reading, filters, dedup, writing and the HTML report), on real sites replicated to
a size (rows repeated with new ids, `bench_scale.scaled_posts`); and `--workers 2` beside `--workers 1` on a bigger
copy. Runs interleaved (raw, build, raw, build, ...), best of ``--runs``, so the ratios come from one run on this
machine, whose speed drifts.

    .venv/bin/python benchmarks/bench_speed.py [--mb 120] [--big-mb 400] [--runs 3] [--against DIR] [SITE ...]

SITE: a folder name under ../shared/data/stackexchange holding a Posts.xml (default: coffee, matheducators, genai).
Prints per site: raw scan seconds, build seconds, the ratio (target >= 0.5), and for the big copy the --workers 2
speed-up (target close to 2x). ``--against DIR`` also times another checkout's builds (e.g. ``git archive REV | tar
-x -C DIR``), interleaved in the same runs, and prints its figures in an ``old`` column. The first build of a session also makes the user cache (the language model); a
warm-up build runs first so every timed build finds it.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import scaled_posts  # noqa: E402

RAW_SCAN = r"""
import sys
from lxml import etree
rows = 0
for _, element in etree.iterparse(sys.argv[1], tag="row", resolve_entities=False, no_network=True, load_dtd=False):
    dict(element.attrib)
    rows += 1
    element.clear()
print(rows)
"""


def seconds(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    # (run outside any checkout: ``python -c`` puts the working folder first on sys.path)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, cwd=tempfile.gettempdir())
    return time.perf_counter() - start


def build_cmd(folder: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-c", "from lima_data.cli import main; main()", "build", "--recipe", "lima",
            "--sources", "stackexchange", "--input", str(folder), "--out", str(out), "--workers", str(workers), "-q"]


def timed_build(folder: Path, out: Path, workers: int, env: dict) -> float:
    shutil.rmtree(out, ignore_errors=True)  # no cached task results
    return seconds(build_cmd(folder, out, workers), env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sites", nargs="*", default=["coffee", "matheducators", "genai"])
    parser.add_argument("--mb", type=float, default=120, help="MB of each site's replicated Posts.xml")
    parser.add_argument("--big-mb", type=float, default=400, help="MB of the copy built with 1 and 2 workers "
                        "(first site; 0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--against", type=Path, help="another checkout whose builds are timed in the same runs")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    old_env = {**os.environ, "PYTHONPATH": str(args.against.resolve())} if args.against else None
    tmp = Path(tempfile.mkdtemp(prefix="lima-bench-speed-"))
    try:
        old_head = " old build s | old ratio |" if old_env else ""
        print(f"| site | MB | raw scan s | build --workers 1 s | ratio (target >= 0.5) |{old_head}\n"
              f"|---|---|---|---|---|{'---|---|' if old_env else ''}")
        for n, site in enumerate(args.sites):
            src = args.shared / "stackexchange" / site / "Posts.xml"
            folder = tmp / site / site
            folder.mkdir(parents=True)
            scaled_posts(src, folder / "Posts.xml", max(1, math.ceil(args.mb * 1e6 / src.stat().st_size)))
            mb = (folder / "Posts.xml").stat().st_size / 1e6
            if n == 0:
                timed_build(folder.parent, tmp / "warm-up", 1, env)
            raw, built, old = [], [], []
            for _ in range(args.runs):
                raw.append(seconds([sys.executable, "-c", RAW_SCAN, str(folder / "Posts.xml")], env))
                built.append(timed_build(folder.parent, tmp / "out", 1, env))
                if old_env:
                    old.append(timed_build(folder.parent, tmp / "out", 1, old_env))
            old_cells = f" {min(old):.2f} | {min(raw) / min(old):.2f} |" if old else ""
            print(f"| {site} | {mb:.0f} | {min(raw):.2f} | {min(built):.2f} | {min(raw) / min(built):.2f} |{old_cells}",
                  flush=True)
            shutil.rmtree(folder.parent)
        if args.big_mb:
            site = args.sites[0]
            src = args.shared / "stackexchange" / site / "Posts.xml"
            folder = tmp / "big" / site
            folder.mkdir(parents=True)
            scaled_posts(src, folder / "Posts.xml", max(1, math.ceil(args.big_mb * 1e6 / src.stat().st_size)))
            mb = (folder / "Posts.xml").stat().st_size / 1e6
            raw, one, two, old_one, old_two = [], [], [], [], []
            for _ in range(args.runs):
                raw.append(seconds([sys.executable, "-c", RAW_SCAN, str(folder / "Posts.xml")], env))
                one.append(timed_build(folder.parent, tmp / "out1", 1, env))
                two.append(timed_build(folder.parent, tmp / "out2", 2, env))
                if old_env:
                    old_one.append(timed_build(folder.parent, tmp / "out", 1, old_env))
                    old_two.append(timed_build(folder.parent, tmp / "out", 2, old_env))
            same = (tmp / "out1" / "lima" / "train.jsonl").read_bytes() == (tmp / "out2" / "lima" / "train.jsonl").read_bytes()
            print(f"\n{site} x{mb:.0f} MB: raw scan {min(raw):.2f} s, build --workers 1 {min(one):.2f} s "
                  f"(ratio {min(raw) / min(one):.2f}), --workers 2 {min(two):.2f} s (ratio {min(raw) / min(two):.2f}; "
                  f"speed-up {min(one) / min(two):.2f}x); train.jsonl identical: {same}")
            if old_env:
                print(f"old: --workers 1 {min(old_one):.2f} s (ratio {min(raw) / min(old_one):.2f}), --workers 2 "
                      f"{min(old_two):.2f} s (ratio {min(raw) / min(old_two):.2f}; speed-up "
                      f"{min(old_one) / min(old_two):.2f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
