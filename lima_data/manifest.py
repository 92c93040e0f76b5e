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

from .errors import InputError, safe_text
from .text import utf8_lines
from .pipeline import dumps

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
    """Write pretty JSON (2-space indent, sorted nowhere: insertion order is meaningful); lone surrogates (a file
    name that is not UTF-8) are written escaped (:func:`~lima_data.errors.safe_text`)."""
    text = safe_text(json.dumps(data, ensure_ascii=False, indent=2), json=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text + "\n")


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
        InputError: a line is not UTF-8 or not JSON (file and line named).
    """
    for line, raw in utf8_lines(path):
        if not raw.strip():
            continue
        try:
            yield line, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"not JSON: {exc.msg}", line) from None


def read_split(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The rows of one split of a manifest folder (``[]`` when the file is absent and manifest.json does not list
    it, or lists it with no row).

    Raises:
        InputError: the file is missing although manifest.json lists rows for it, or a line is not UTF-8 or not
            JSON (file and line named).
    """
    file = Path(path) / SPLIT_FILES[split]
    if not file.is_file():
        listed = _listed_rows(Path(path), SPLIT_FILES[split])
        if listed:
            raise InputError(file, f"missing, but manifest.json lists {listed} row(s) for it: the manifest folder is "
                                   "incomplete; copy the file back or build the manifest again")
        return []
    return [row for _, row in read_jsonl(file)]


def _listed_rows(folder: Path, name: str) -> int:
    try:
        return int(json.loads((folder / MANIFEST_FILE).read_bytes())["files"][name]["rows"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


#: Keys of manifest.json that the commands reading a manifest rely on, with their JSON type.
REQUIRED_KEYS = {"name": str, "recipe": dict, "files": dict, "counts": dict, "funnel": dict}


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read ``manifest.json`` of a manifest folder.

    Raises:
        InputError: the folder or its manifest.json is missing, not UTF-8, not JSON, or not a manifest (a key of
            :data:`REQUIRED_KEYS` missing or of the wrong type).
    """
    folder = Path(path)
    file = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise InputError(folder, "no such manifest folder" if not folder.exists() else
                         "is a file, not a manifest folder (manifests/<name>)")
    if not file.is_file():
        raise InputError(folder, "not a manifest folder (no manifest.json); build one with `lima-data build`")
    try:
        data = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(file, f"not UTF-8 text (byte offset {exc.start}); restore it or build the manifest again"
                         ) from None
    except json.JSONDecodeError as exc:
        raise InputError(file, f"not valid JSON: {exc.msg}", exc.lineno) from None
    if not isinstance(data, dict):
        raise InputError(file, "not a manifest (a JSON object is expected); restore it or build the manifest again")
    for key, kind in REQUIRED_KEYS.items():
        if not isinstance(data.get(key), kind):
            raise InputError(file, f"{'no' if key not in data else 'a malformed'} {key!r} entry: the file was "
                                   "edited or is not lima-data's; restore it or build the manifest again")
    return data
