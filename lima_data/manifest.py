"""Manifest folders: ``manifests/<name>/`` (DESIGN.md section 4).

Layout::

    train.jsonl dev.jsonl test.jsonl   one example per line, {"id", "source", "domain", "messages", "meta"}
    manifest.json                      name, version, resolved recipe and its sha256, seed, inputs (size, sha256),
                                       counts, funnel, selection, sha256 of each JSONL, created time
    report/stats.json                  per-source funnel with value summaries, reader stats, selection, timings
    report/rejects/<filter>.jsonl.zst  every rejected candidate with its filter and reason
    report/measurements.jsonl.zst      every candidate's measured values

A manifest is built in a hidden staging folder next to its destination and moved into place only when complete,
so a failed or killed build never leaves a half-written manifest and never damages the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError
from .pipeline import dumps
from .text import loads_json

SPLIT_FILES = {"train": "train.jsonl", "dev": "dev.jsonl", "test": "test.jsonl"}
MANIFEST_FILE = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as UTF-8 JSON lines (compact, keys in insertion order, ``\\n`` endings); return the count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            n += 1
    return n


def write_json(path: Path, data: Any) -> None:
    """Write pretty JSON (2-space indent, sorted nowhere: insertion order is meaningful)."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.write("\n")


class StagedManifest:
    """A manifest folder being built: files go to a staging folder; :meth:`commit` moves it to
    ``out_dir/name`` (replacing an older manifest of that name only then); leaving the ``with`` block with an
    exception removes the staging folder and keeps any older manifest untouched."""

    def __init__(self, out_dir: Path, name: str):
        if not name or "/" in name or name.startswith("."):
            raise InputError(name, "a manifest name must be a plain folder name")
        self.out_dir = Path(out_dir)
        self.final = self.out_dir / name
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=self.out_dir))
        (self.path / "report").mkdir()
        self.committed = False

    def __enter__(self) -> "StagedManifest":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the staged folder into place (two renames; the old manifest is removed last)."""
        old = None
        if self.final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.old-", dir=self.out_dir))
            os.rmdir(old)
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        self.committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank JSON line of a file (BOM allowed).

    Raises:
        InputError: a line is not JSON (file and line named).
    """
    with open(path, encoding="utf-8-sig") as fh:
        for line, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield line, loads_json(raw)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"not JSON: {exc.msg}", line) from None


def read_split(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The rows of one split of a manifest folder (``[]`` when the file is absent).

    Raises:
        InputError: a line is not JSON (file and line named).
    """
    file = Path(path) / SPLIT_FILES[split]
    return [row for _, row in read_jsonl(file)] if file.is_file() else []


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a manifest folder.

    Raises:
        InputError: the folder or its manifest.json is missing or not JSON.
    """
    folder = Path(path)
    file = folder / MANIFEST_FILE
    if not file.is_file():
        raise InputError(folder, "not a manifest folder (no manifest.json); build one with `lima-data build`")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(file, f"not valid JSON: {exc.msg}", exc.lineno) from None
