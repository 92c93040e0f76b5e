"""Reddit over several Pushshift months, ``--workers 1`` against ``--workers 2`` (issue 15: Pushshift at terabyte
scale), optionally beside another checkout in the same run.

Makes ``--months`` RS_/RC_ pairs from the real rows in ../shared/data (:func:`bench_dump.make_reddit`: the real
AskMen submissions relabelled r/WritingPrompts, new ids per month, ``--copies`` times per month; the real
RC_2005-12 comments pointed at them), then runs ``lima-data build --recipe lima --sources reddit`` on them with
``--workers 1`` and ``--workers 2``, each as its own process, whole process timed (start-up included), interleaved
with the same builds of ``--against`` (another checkout, e.g. main's, run with its own ``lima_data``). Prints wall
and CPU seconds, peak RSS of the largest process, MB/s of NDJSON, and whether every build's train/dev/test,
manifest.json, report/stats.json, rejects and measurements are byte-identical to the first build's (``.zst``
decompressed; timing keys and the creation time left out).

    .venv/bin/python benchmarks/bench_reddit.py [--months 4] [--copies 4] [--runs 1] [--against OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_dump import make_reddit, show, timed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = {"timings", "created", "seconds"}


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def digest(manifest: Path) -> dict[str, str]:
    """sha256 of each file of a built manifest folder (``.zst`` decompressed, JSON without timing keys, the
    dataset card without its creation line; the HTML report left out: it embeds timings)."""
    out = {}
    for path in sorted(p for p in manifest.rglob("*") if p.is_file()):
        rel = path.relative_to(manifest).as_posix()
        if rel.endswith(".html"):
            continue
        data = path.read_bytes()
        if path.suffix == ".zst":
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        if path.suffix == ".json":
            data = json.dumps(_clean(json.loads(data))).encode()
        if rel == "README.md":
            data = b"".join(line for line in data.splitlines(True) if not line.startswith(b"- created:"))
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=4)
    parser.add_argument("--copies", type=int, default=4, help="copies of the real rows in each month")
    parser.add_argument("--runs", type=int, default=1, help="runs of each build (best wall time shown)")
    parser.add_argument("--against", type=Path, help="another checkout to time in the same run (e.g. main's)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    checkouts = [("this", ROOT)] + ([("against", args.against.resolve())] if args.against else [])
    with tempfile.TemporaryDirectory(prefix="bench-reddit-") as tmp:
        folder, mb = make_reddit(args.shared, args.months, Path(tmp), copies=args.copies)
        print(f"{args.months} months x {args.copies} copies: {mb:.0f} MB of NDJSON, "
              f"{sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.0f} MB zstd", flush=True)
        best: dict[str, tuple[float, float, float]] = {}
        digests: dict[str, dict[str, str]] = {}
        for run in range(args.runs):
            for workers in (1, 2):
                for name, checkout in checkouts:
                    label = f"{name} --workers {workers}"
                    out = Path(tmp) / f"out-{name}-{workers}-{run}"
                    env = {**os.environ, "PYTHONPATH": str(checkout)}
                    run_cli = f"import sys; sys.path.insert(0, {str(checkout)!r}); from lima_data.cli import main; main()"
                    cmd = [sys.executable, "-c", run_cli, "build", "--recipe",
                           "lima", "--sources", "reddit", "--input", str(folder), "-o", str(out), "-q",
                           "--workers", str(workers)]
                    figure = timed(cmd, env)
                    show(label, figure)
                    if label not in best or figure[0] < best[label][0]:
                        best[label] = figure
                    digests[label] = digest(out / "lima")
        print()
        for label, figure in best.items():
            print(f"{label:24} best {figure[0]:6.2f} s  {mb / figure[0]:6.1f} MB/s  peak RSS {figure[1]:5.0f} MiB")
        for name, _ in checkouts:
            one, two = best[f"{name} --workers 1"][0], best[f"{name} --workers 2"][0]
            print(f"{name}: --workers 2 / --workers 1 speed-up {one / two:.2f}x")
        first = next(iter(digests.values()))
        same = all(d == first for d in digests.values())
        print("outputs byte-identical across all builds:", same)
        if not same:
            for label, d in digests.items():
                print(label, sorted(k for k in set(d) | set(first) if d.get(k) != first.get(k)))


if __name__ == "__main__":
    main()
