"""The one schema of a manifest's rows, and its dataset card (``README.md``) for Hugging Face ``datasets``.

Every manifest row is ``{"id", "source", "domain", "messages", "meta"}``. ``meta`` keys differ by source (Stack
Exchange has ``tags`` and ``answer_id``, wikiHow ``categories``, ...), and Arrow-based readers (``datasets``,
``polars``, ``pyarrow``) need one schema for all rows of all splits. So a build computes the union of the ``meta``
keys with one type each (:func:`meta_schema`) and writes every row with every key, ``null`` where a row has no
value (:func:`normalise_meta`). The card declares that schema (``dataset_info.features``) and the split files
(``configs``), so ``datasets.load_dataset(<manifest folder>)`` reads the manifest as it is, on datasets 3.x to 5.x.

Split names: the paper's and the files' name is ``dev`` (``dev.jsonl``); the Hugging Face ecosystem expects
``validation``, so the card and the ``hf`` / ``parquet`` exports call that split ``validation``
(:data:`HF_SPLIT_NAMES`). A split without rows has no file, no card entry and no export entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import safe_text

#: Manifest split -> the split name Hugging Face tools expect.
HF_SPLIT_NAMES = {"train": "train", "dev": "validation", "test": "test"}

#: Types a ``meta`` value may have in the schema (the card's dtype names).
META_TYPES = ("bool", "int64", "float64", "string", "list<string>")

#: Licence of each source's text, for the card (the per-row licence is in ``meta["licence"]``).
SOURCE_LICENCES = {
    "stackexchange": "CC BY-SA (2.5, 3.0 or 4.0 by post date; per row in meta.licence); attribution required",
    "wikihow": "CC BY-NC-SA 3.0 (wikiHow); attribution required, non-commercial",
    "reddit": "Reddit User Agreement (user content, no CC licence); per row in meta.licence",
    "natural_instructions": "Apache-2.0 (Super-NaturalInstructions)",
    "authored": "the author's own terms (your authored JSONL)",
}


def _value_type(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "list<string>"
    return "json"


def meta_schema(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The union of the ``meta`` keys of ``rows`` with one type each, keys sorted.

    A key's type is that of its non-null values: ``bool``, ``int64``, ``float64``, ``string`` or ``list<string>``;
    ``int64`` and ``float64`` together give ``float64``; a key that is null everywhere is ``string``; any other
    mix (or a dict, or a list of non-strings) is ``string`` holding the value as JSON text (see
    :func:`normalise_meta`).
    """
    seen: dict[str, set[str]] = {}
    for row in rows:
        for key, value in (row.get("meta") or {}).items():
            kinds = seen.setdefault(key, set())
            kind = _value_type(value)
            if kind is not None:
                kinds.add(kind)
    schema = {}
    for key in sorted(seen):
        kinds = seen[key]
        if len(kinds) == 1 and "json" not in kinds:
            schema[key] = next(iter(kinds))
        elif kinds == {"int64", "float64"}:
            schema[key] = "float64"
        else:
            schema[key] = "string" if kinds <= {"string"} else "json"
    return schema


def _coerce(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "float64":
        return float(value)
    if kind == "json":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def normalise_meta(rows: list[dict[str, Any]], schema: dict[str, str]) -> None:
    """Give every row's ``meta`` every key of ``schema`` (in its order), ``None`` where the row has none; values of
    a ``json`` key become JSON text, ``float64`` keys become floats. Changes ``rows`` in place."""
    for row in rows:
        meta = row.get("meta") or {}
        row["meta"] = {key: _coerce(meta.get(key), kind) for key, kind in schema.items()}


def _dtype(kind: str) -> str:
    return "string" if kind == "json" else kind


def hf_features(schema: dict[str, str]):
    """The ``datasets.Features`` of manifest rows with this ``meta`` schema (needs ``datasets``)."""
    from datasets import Features, Value

    try:
        from datasets import List
    except ImportError:  # datasets < 4
        def List(feature):  # noqa: N802
            return [feature]
    meta = {key: List(Value("string")) if kind == "list<string>" else Value(_dtype(kind))
            for key, kind in schema.items()}
    return Features({"id": Value("string"), "source": Value("string"), "domain": Value("string"),
                     "messages": List({"role": Value("string"), "content": Value("string")}),
                     "meta": meta})


def features_yaml(schema: dict[str, str]) -> list[str]:
    """The ``dataset_info.features`` block of the card (YAML lines, two-space indents)."""
    lines = ["  features:"]
    for name in ("id", "source", "domain"):
        lines += [f"  - name: {name}", "    dtype: string"]
    lines += ["  - name: messages", "    list:", "    - name: role", "      dtype: string",
              "    - name: content", "      dtype: string", "  - name: meta", "    struct:"]
    for key, kind in schema.items():
        lines.append(f"    - name: {json.dumps(key)}")
        lines.append("      list: string" if kind == "list<string>" else f"      dtype: {_dtype(kind)}")
    return lines


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def card_text(manifest: dict[str, Any], schema: dict[str, str], split_files: dict[str, str],
              licences: dict[str, list[str]] | None = None) -> str:
    """The dataset card of a manifest: YAML front matter (``configs`` with the split files, ``dataset_info``
    features) and a body with the recipe and its sha256, counts, the funnel, licences per source and the
    attribution note.

    Args:
        manifest: the manifest.json content (name, recipe, counts, funnel, ...).
        split_files: manifest split -> file name, only the splits that have rows.
        licences: source -> the distinct ``meta.licence`` values of its rows.
    """
    name = manifest["name"]
    lines = ["---", "license: other", "task_categories:", "- text-generation", "language:", "- en", "tags:",
             "- sft", "- lima", "- lima-data", "configs:", "- config_name: default", "  data_files:"]
    for split, file in split_files.items():
        lines += [f"  - split: {HF_SPLIT_NAMES[split]}", f"    path: {file}"]
    lines += ["dataset_info:", "  config_name: default"] + features_yaml(schema) + ["---", ""]
    recipe = manifest.get("recipe", {})
    lines += [f"# {name}", "",
              f"A LIMA-style supervised fine-tuning set built by lima-data {manifest.get('lima_data_version', '')} "
              f"with the recipe `{recipe.get('name', name)}`"
              f"{': ' + recipe['description'] if recipe.get('description') else ''}.", "",
              f"- recipe sha256: `{manifest.get('recipe_sha256', '')}`",
              f"- seed: {manifest.get('seed')}", f"- created: {manifest.get('created', '')}", "",
              "Rows are `{id, source, domain, messages, meta}` in the chat `messages` layout that Hugging Face and "
              "TRL read; test rows hold only the user turn. `meta` has the same keys in every row (null where a "
              "source has no value). The `dev.jsonl` file is the paper's dev split, loaded as `validation`.", "",
              "```python", "from datasets import load_dataset", f"ds = load_dataset(\"path/to/{name}\")",
              "```", "", "## Splits", "", "| split | file | rows | by source |", "|---|---|---:|---|"]
    for split, counts in manifest.get("counts", {}).items():
        by_source = ", ".join(f"{s} {n}" for s, n in counts.get("by_source", {}).items())
        file = split_files.get(split, "(no rows, no file)")
        lines.append(f"| {HF_SPLIT_NAMES.get(split, split)} | {file} | {counts.get('total', 0)} | {by_source} |")
    lines += ["", "## Funnel", "", "| source | filter | in | kept | dropped |", "|---|---|---:|---:|---|"]
    for source, funnel in manifest.get("funnel", {}).items():
        for stage in funnel.get("stages", []):
            dropped = ", ".join(f"{r} {n}" for r, n in stage.get("dropped", {}).items())
            lines.append(f"| {source} | {stage.get('filter')} | {stage.get('in')} | {stage.get('kept')} | "
                         f"{_cell(dropped)} |")
    lines += ["", "## Licences and attribution", "", "| source | licence |", "|---|---|"]
    for source in manifest.get("sources", []):
        found = (licences or {}).get(source)
        lines.append(f"| {source} | {_cell('; '.join(found) if found else SOURCE_LICENCES.get(source, 'unknown'))} |")
    lines += ["", "Stack Exchange and Reddit rows keep their `url`, `author` and `licence` in `meta`: CC BY-SA "
              "requires attribution, so keep these fields (or credit the authors another way) when you share "
              "the data or anything derived from it.", ""]
    warnings = manifest.get("warnings") or []
    if warnings:
        lines += ["## Build warnings", ""] + [f"- {_cell(w)}" for w in warnings] + [""]
    return "\n".join(lines)


def write_card(folder: Path, manifest: dict[str, Any], schema: dict[str, str], split_files: dict[str, str],
               rows: Iterable[dict[str, Any]] = ()) -> Path:
    """Write ``folder/README.md`` (see :func:`card_text`); ``rows`` give the licences found per source."""
    licences: dict[str, set[str]] = {}
    for row in rows:
        licence = (row.get("meta") or {}).get("licence")
        if licence:
            licences.setdefault(row["source"], set()).add(str(licence))
    path = Path(folder) / "README.md"
    text = card_text(manifest, schema, split_files, {s: sorted(v) for s, v in licences.items()})
    path.write_text(safe_text(text), encoding="utf-8", newline="\n")  # a non-UTF-8 input name as \xNN
    return path
