"""Decontamination of train against test (LIMA's test prompts must not be learnt).

A global stage, after dedup: the prompts of the selected test rows and of any user-supplied benchmark files are cut
into word ``ngram``-grams (13 by default, normalised: NFKC, case-folded, words of letters and digits); a train or
dev candidate whose prompt or response shares any of them is dropped with reason ``contaminated``. Measured value:
the number of shared n-grams.

Benchmark files: JSON lines (a ``prompt``, ``question``, ``instruction``, ``input`` or ``text`` field, or chat
``messages`` / GAIR ``conversations``: every user turn), CSV (the first of those columns), or plain text (one
prompt a line).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError, RecipeError
from ..files import csv_rows, read_jsonl
from ..text import normalised_words, utf8_lines

PROMPT_FIELDS = ("prompt", "question", "instruction", "input", "text")


def ngrams(text: str, n: int) -> set[int]:
    """Hashes of the word n-grams of normalised ``text`` (none when it has fewer than ``n`` words)."""
    words = normalised_words(text)
    return {hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1)}


def benchmark_prompts(path: Path) -> list[str]:
    """The prompts of a benchmark file (see the module docstring).

    Raises:
        InputError: the file is missing or not a regular file, is binary or not UTF-8, or a JSON line is
            malformed (file and line named).
    """
    if not path.is_file():
        raise InputError(path, "benchmark file not found" if not path.exists() else "not a regular file")
    prompts: list[str] = []
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        for _, row in read_jsonl(path):
            prompts.extend(_row_prompts(row))
    elif suffix == ".csv":
        for _, row in csv_rows(path):
            prompts.extend(row[f] for f in PROMPT_FIELDS if row.get(f))
    else:
        prompts = [text.strip() for _, text in utf8_lines(path) if text.strip()]
    return prompts


def _row_prompts(row: Any) -> list[str]:
    if isinstance(row, str):
        return [row]
    if not isinstance(row, dict):
        return []
    if isinstance(row.get("messages"), list):
        return [m.get("content", "") for m in row["messages"] if isinstance(m, dict) and m.get("role") == "user"]
    if isinstance(row.get("conversations"), list):
        return [t for t in row["conversations"][::2] if isinstance(t, str)]
    for field in PROMPT_FIELDS:
        if isinstance(row.get(field), str):
            return [row[field]]
    return []


class Decontaminate:
    """The decontamination stage. ``settings``: the recipe's ``[decontamination]`` table: ``enabled`` (true),
    ``ngram`` (13), ``benchmarks`` (paths of benchmark files)."""

    name = "decontamination"
    reasons = ("contaminated",)

    def __init__(self, settings: dict[str, Any] | None = None, benchmarks: Iterable[str | Path] = ()):
        settings = dict(settings or {})
        unknown = set(settings) - {"enabled", "ngram", "benchmarks"}
        if unknown:
            raise RecipeError(f"[decontamination]: unknown setting(s) {sorted(unknown)}")
        self.enabled = settings.get("enabled", True)
        self.n = int(settings.get("ngram", 13))
        self.benchmarks = [Path(p) for p in [*settings.get("benchmarks", []), *benchmarks]]
        self._grams: set[int] = set()
        self.references = 0

    def add_references(self, prompts: Iterable[str]) -> None:
        """Add prompts that train must not overlap (test prompts, benchmark prompts)."""
        for prompt in prompts:
            self._grams |= ngrams(prompt, self.n)
            self.references += 1

    def load_benchmarks(self) -> None:
        for path in self.benchmarks:
            self.add_references(benchmark_prompts(path))

    def __call__(self, candidate: Candidate) -> tuple[int, str | None]:
        if not self.enabled or not self._grams:
            return 0, None
        shared = len((ngrams(candidate.prompt, self.n) | ngrams(candidate.response, self.n)) & self._grams)
        return shared, ("contaminated" if shared else None)
