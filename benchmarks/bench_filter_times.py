"""Per-filter seconds of two checkouts side by side: the same build run with each, interleaved, best of N.

Each round builds with checkout A, then B (``PYTHONPATH=<checkout> lima-data build ...``, a fresh output folder
each time, so no cache serves results), and reads ``report/stats.json``: every filter's ``seconds`` in
``funnel.<source>.filters``, the build's stage ``timings`` and the wall time. Interleaving and the best of N
rounds keep a shared machine's drift out of the ratio.

    .venv/bin/python benchmarks/bench_filter_times.py OLD_CHECKOUT NEW_CHECKOUT \\
        --input /tmp/perf/coffee --sources stackexchange [--recipe lima] [--rounds 3]

Nothing is asserted; a table goes to stdout (seconds, and new/old).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_build(checkout: Path, args, out: Path) -> dict[str, float]:
    """One build with ``checkout``'s code; ``{name: seconds}`` of every filter, stage and the wall time."""
    shutil.rmtree(out, ignore_errors=True)
    lima_data = Path(sys.executable).with_name("lima-data")
    command = [str(lima_data), "build", "--recipe", args.recipe, "--input", str(args.input), "--out", str(out),
               "--workers", "1", "-q"] + (["--sources", args.sources] if args.sources else [])
    start = time.perf_counter()
    subprocess.run(command, cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)}, check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    stats = json.loads(next(out.glob("*/report/stats.json")).read_text())
    times = {f"{source}.{f['filter']}": f["seconds"] for source, funnel in stats["funnel"].items()
             for f in funnel["filters"]}
    times.update({f"stage.{name}": seconds for name, seconds in stats.get("timings", {}).items()})
    times["wall"] = wall
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--sources", default="stackexchange")
    parser.add_argument("--recipe", default="lima")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for tag in ("old", "new"):
                times = run_build(getattr(args, tag).resolve(), args, Path(tmp) / tag)
                for name, seconds in times.items():
                    best[tag][name] = min(best[tag].get(name, float("inf")), seconds)
    print(f"{'':32s} {'old s':>8s} {'new s':>8s} {'new/old':>8s}")
    for name, old in best["old"].items():
        new = best["new"].get(name, float("nan"))
        print(f"{name:32s} {old:8.3f} {new:8.3f} {new / old if old else float('nan'):8.2f}")


if __name__ == "__main__":
    main()
