"""The Stack Exchange reader alone (issue 15, item 4): seconds per Posts.xml, no filters, no build.

Two paths, each its own process (start-up and imports not counted):

- ``whole``: :meth:`StackExchangeReader.read` over the file (both passes), as a file up to ``shard_bytes`` is read;
- ``range``: :meth:`StackExchangeSource.prepare` (pass 1 per 64 MiB byte range to Parquet, the polars join) then
  ``read`` of every range (pass 2), as a bigger file is read in a build.

Prints wall and CPU seconds (best of ``--repeat``) and a digest of every candidate (``repr``) and every reader stat,
so two checkouts can be compared for byte identity: ``--against DIR`` runs the same with ``PYTHONPATH=DIR``
(e.g. a ``git worktree`` of the previous commit), interleaved with this checkout's runs, and prints the ratio.

    .venv/bin/python benchmarks/bench_se_reader.py POSTS_XML [...] [--repeat 3] [--against OLD_CHECKOUT]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(mode: str, path: Path) -> str:
    """One timed read of ``path`` by ``mode`` in this process: ``"wall cpu digest candidates"``."""
    from lima_data.sources import ReaderStats
    from lima_data.sources.stackexchange import SiteDump, StackExchangeReader, StackExchangeSource

    out, stats = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    if mode == "whole":
        dump = SiteDump("stackexchange", path, "posts_xml", path.stat().st_size, 2, None, path.parent.name)
        stats.append(ReaderStats(str(path)))
        out.extend(StackExchangeReader(min_answer_score=10).read(dump, stats[0]))
    else:
        source = StackExchangeSource({"min_answer_score": 10})
        shards = source.finalize([source.claim(path, True)], print)
        with tempfile.TemporaryDirectory() as workdir:
            source.workdir = Path(workdir)
            source.prepare(shards, Path(workdir), lambda fn, args: [fn(*a) for a in args])
            by_shard: dict = {}
            out.extend(source.read(shards, lambda s: by_shard.setdefault(s, ReaderStats(str(s.path))),
                                   lambda s: None))
            stats.extend(by_shard.values())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest = hashlib.sha256()
    for item in (*out, *stats):
        digest.update(repr(item).encode())
    return f"{wall:.3f} {cpu:.3f} {digest.hexdigest()[:16]} {len(out)}"


def run(checkout: Path, mode: str, path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, __file__, "--one", mode, str(path)], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("posts", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout to compare with (its lima_data)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(args.one[0], Path(args.one[1])))
        return
    checkouts = {"this": ROOT, **({"against": args.against.resolve()} if args.against else {})}
    for path in args.posts:
        for mode in ("whole", "range"):
            best: dict[str, list[str]] = {}
            for _ in range(args.repeat):
                for name, checkout in checkouts.items():  # interleaved: the machine's speed drifts
                    got = run(checkout, mode, path)
                    if name not in best or float(got[0]) < float(best[name][0]):
                        best[name] = got
            line = "  ".join(f"{name}: wall {b[0]} s cpu {b[1]} s digest {b[2]} ({b[3]} candidates)"
                             for name, b in best.items())
            if args.against:
                same = "identical" if best["this"][2] == best["against"][2] else "DIFFERENT"
                line += f"  ratio {float(best['this'][0]) / float(best['against'][0]):.2f}, {same}"
            print(f"{path} {mode}: {line}")


if __name__ == "__main__":
    main()
