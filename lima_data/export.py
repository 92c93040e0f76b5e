"""Export a manifest to other layouts, and validate a manifest folder.

Formats (``lima-data export``), one file (or folder) per split under the output folder:

- ``messages``: the manifest's own JSONL rows (``{"id", "source", "domain", "messages", "meta"}``), copied;
- ``gair``: LIMA's release layout, ``{"conversations": [turn, ...], "source": ...}`` (system turns dropped);
- ``parquet``: one Parquet file per split (pyarrow), columns ``id, source, domain, messages, meta`` (``meta`` as
  a JSON string, since its keys differ by source);
- ``hf``: a ``datasets.DatasetDict`` written with ``save_to_disk`` (load it with ``datasets.load_from_disk``),
  the same columns as Parquet.

Parquet and Hugging Face export need the ``export`` extra (``pip install 'lima-data[export]'``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .errors import LimaDataError
from .manifest import SPLIT_FILES, load_manifest, read_split, sha256_file, write_jsonl
from .manifest import row_problems as _row_problems

FORMATS = ("messages", "gair", "parquet", "hf")


def to_gair(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row in LIMA's GAIR layout."""
    return {"conversations": [m["content"] for m in row["messages"] if m["role"] != "system"],
            "source": row["source"]}


def _table_rows(rows: list[dict[str, Any]]) -> dict[str, list]:
    return {
        "id": [r["id"] for r in rows],
        "source": [r["source"] for r in rows],
        "domain": [r["domain"] for r in rows],
        "messages": [[{"role": m["role"], "content": m["content"]} for m in r["messages"]] for r in rows],
        "meta": [json.dumps(r.get("meta", {}), ensure_ascii=False, sort_keys=True) for r in rows],
    }


def _features():
    from datasets import Features, Value

    return Features({"id": Value("string"), "source": Value("string"), "domain": Value("string"),
                     "messages": [{"role": Value("string"), "content": Value("string")}],
                     "meta": Value("string")})


def export_manifest(path: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the manifest at ``path`` in format ``fmt`` to the folder ``out`` (created; replaced atomically).

    Raises:
        InputError: not a manifest, or a split file is bad.
        LimaDataError: unknown format, or the format's library is not installed.
    """
    path, out = Path(path), Path(out)
    load_manifest(path)
    if fmt not in FORMATS:
        raise LimaDataError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    splits = {split: read_split(path, split) for split in SPLIT_FILES}
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if fmt == "messages":
            for split, rows in splits.items():
                write_jsonl(tmp / SPLIT_FILES[split], rows)
        elif fmt == "gair":
            for split, rows in splits.items():
                write_jsonl(tmp / SPLIT_FILES[split], (to_gair(r) for r in rows))
        elif fmt == "parquet":
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:
                raise LimaDataError("Parquet export needs pyarrow: pip install 'lima-data[export]'") from None
            for split, rows in splits.items():
                pq.write_table(pa.table(_table_rows(rows)), tmp / f"{split}.parquet")
        else:
            try:
                from datasets import Dataset, DatasetDict
            except ImportError:
                raise LimaDataError("Hugging Face export needs datasets: pip install 'lima-data[export]'") from None
            DatasetDict({split: Dataset.from_dict(_table_rows(rows), features=_features())
                         for split, rows in splits.items()}).save_to_disk(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def validate_manifest(path: str | Path) -> list[str]:
    """Check a manifest folder; return the problems found (empty when valid).

    Checks: manifest.json readable; each split file's sha256 and row count against manifest.json; every row has
    ``id``, ``source``, ``domain``, ``messages`` (a non-empty list of ``{"role", "content"}`` starting with a user
    turn, roles user / assistant / system, string contents) and ``meta`` (an object); test rows may hold only the
    user turn, train and dev rows need an assistant turn; ids unique across splits.

    Raises:
        InputError: ``path`` is not a manifest folder.
    """
    path = Path(path)
    manifest = load_manifest(path)
    problems: list[str] = []
    seen: dict[str, str] = {}
    for split, name in SPLIT_FILES.items():
        file = path / name
        recorded = manifest.get("files", {}).get(name)
        if not file.is_file():
            problems.append(f"{name}: missing")
            continue
        if recorded is None:
            problems.append(f"{name}: not listed in manifest.json")
        elif sha256_file(file) != recorded["sha256"]:
            problems.append(f"{name}: sha256 differs from manifest.json (the file was changed after the build)")
        with open(file, "rb") as fh:
            count = 0
            for line, raw in enumerate(fh, 1):
                count += 1
                try:
                    row = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    problems.append(f"{name}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})")
                    continue
                except json.JSONDecodeError as exc:
                    problems.append(f"{name}:{line}: not JSON ({exc.msg})")
                    continue
                problems.extend(f"{name}:{line}: {p}" for p in _row_problems(row, split))
                row_id = row.get("id") if isinstance(row, dict) else None
                if isinstance(row_id, str):
                    if row_id in seen:
                        problems.append(f"{name}:{line}: duplicate id {row_id!r} (also in {seen[row_id]})")
                    else:
                        seen[row_id] = f"{name}:{line}"
        if recorded is not None and count != recorded["rows"]:
            problems.append(f"{name}: {count} rows, manifest.json says {recorded['rows']}")
    return problems
