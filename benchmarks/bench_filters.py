"""Quality / language / PII / dedup chain over many candidates (issue 4's benchmark).

Candidates are made from the real responses in ../shared/data (Stack Exchange answers cleaned to Markdown, LIMA's
released responses) by repetition with random word edits (about 3% of words replaced, deleted or inserted), so
near-duplicates are plentiful. Reports candidates/s per stage and peak RSS, and runs a plain datasketch loop
(MinHash per text with update(), MinHashLSH insert + query) on the same texts beside our dedup stage.

    .venv/bin/python benchmarks/bench_filters.py [--n 100000] [--detector langdetect|py3langid] [--workers 2]

With ``--workers N`` the per-candidate filters (quality, language, PII) run in N processes, in chunks (they are
pure per candidate); dedup is one global step and stays in the main process.

Nothing is asserted; figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

from lima_data.candidate import Candidate
from lima_data.filters import build_filter
from lima_data.filters.dedup import Dedup, shingles
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover
from lima_data.text.markup import html_to_markdown


def real_texts(shared: Path) -> list[tuple[str, str]]:
    pairs = []
    for dump in discover([shared / "stackexchange"]):
        for c in StackExchangeReader().read(dump, ReaderStats(dump.label)):
            if len(c.response) > 400:
                pairs.append((c.prompt, html_to_markdown(c.response)[0]))
    for line in (shared / "lima" / "lima_train_slice.jsonl").read_text().splitlines():
        turns = json.loads(line)["conversations"]
        pairs.append((turns[0], turns[1]))
    return pairs


def edit(text: str, rng: random.Random, rate: float = 0.03) -> str:
    words = text.split(" ")
    for _ in range(max(1, int(len(words) * rate))):
        i = rng.randrange(len(words))
        op = rng.random()
        if op < 0.4:
            words[i] = rng.choice(words)
        elif op < 0.7 and len(words) > 1:
            del words[i]
        else:
            words.insert(i, rng.choice(words))
    return " ".join(words)


def _run_chunk(chunk: list[Candidate], stages) -> tuple[list[Candidate], int]:
    filters = [build_filter(name, settings, 0) for name, settings in stages]
    dropped = 0
    for c in chunk:
        for flt in filters:
            if flt(c)[1]:
                dropped += 1
    return chunk, dropped


def peak_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--detector", default="py3langid", choices=["langdetect", "py3langid"])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    base = real_texts(args.shared)
    rng = random.Random(0)
    candidates = []
    for i in range(args.n):
        prompt, response = base[i % len(base)]
        if i >= len(base):
            prompt, response = edit(prompt, rng), edit(response, rng)
        candidates.append(Candidate(f"bench/{i}", "bench", "bench", prompt, response, rng.randrange(50)))
    chars = sum(len(c.response) for c in candidates)
    print(f"{len(candidates)} candidates from {len(base)} real texts, {chars / 1e6:.1f} M response characters, "
          f"peak RSS after building them {peak_mib():.0f} MiB")

    total = 0.0
    stages = (("quality", {}), ("language", {"detector": args.detector}), ("pii", {}))
    if args.workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        start = time.perf_counter()
        chunks = [candidates[i:i + 2000] for i in range(0, len(candidates), 2000)]
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(_run_chunk, chunks, [stages] * len(chunks)))
        candidates = [c for chunk, _ in results for c in chunk]
        seconds = time.perf_counter() - start
        total += seconds
        dropped = sum(d for _, d in results)
        print(f"quality+language+pii in {args.workers} processes: {seconds:.1f} s, "
              f"{len(candidates) / seconds:.0f} candidates/s, dropped {dropped}")
    else:
        for name, settings in stages:
            flt = build_filter(name, settings, 0)
            start = time.perf_counter()
            dropped = sum(1 for c in candidates if flt(c)[1])
            seconds = time.perf_counter() - start
            total += seconds
            print(f"{name:10} {seconds:7.1f} s  {len(candidates) / seconds:9.0f} candidates/s  dropped {dropped}")

    start = time.perf_counter()
    result = Dedup().run(candidates)
    seconds = time.perf_counter() - start
    total += seconds
    dropped = sum(1 for _, r in result.decisions.values() if r)
    print(f"{'dedup':10} {seconds:7.1f} s  {len(candidates) / seconds:9.0f} candidates/s  dropped {dropped} "
          f"({len(result.clusters)} clusters)")
    print(f"chain total {total:.1f} s, {len(candidates) / total:.0f} candidates/s, peak RSS {peak_mib():.0f} MiB")

    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    found = 0
    for c in candidates:
        m = MinHash(num_perm=128)
        for s in shingles(c.response, 5):
            m.update(s)
        found += bool(lsh.query(m))
        lsh.insert(c.id, m)
    seconds = time.perf_counter() - start
    print(f"plain datasketch loop (MinHash.update per shingle + LSH query/insert, responses only): {seconds:.1f} s, "
          f"{len(candidates) / seconds:.0f} candidates/s, {found} with an LSH match")


if __name__ == "__main__":
    main()
