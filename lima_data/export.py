"""Export a manifest to other layouts, push it to the Hugging Face Hub, and validate a manifest folder.

Formats (``lima-data export``), one file (or folder) per split under the output folder:

- ``messages``: the manifest's own JSONL rows (``{"id", "source", "domain", "messages", "meta"}``), copied, with
  the dataset card (``README.md``);
- ``gair``: LIMA's release layout (GAIR/lima): ``train.jsonl`` and ``test.jsonl`` of
  ``{"conversations": [turn, ...], "source": label}`` (system turns dropped) with GAIR's labels
  (:func:`gair_label`); GAIR has no dev split, so dev rows are left out (with a warning);
- ``parquet``: ``train.parquet``, ``validation.parquet`` (the manifest's dev), ``test.parquet`` (pyarrow), the
  columns ``id, source, domain, messages, meta`` with ``meta`` a struct of the manifest's union schema, and a
  dataset card, so ``datasets.load_dataset(<folder>)`` reads it;
- ``hf``: a ``datasets.DatasetDict`` (splits ``train`` / ``validation`` / ``test``) written with ``save_to_disk``
  (load it with ``datasets.load_from_disk``), the same columns and features as Parquet.

A split without rows is left out of every format, with a warning. By default an export goes to
``exports/<manifest name>/<format>`` beside the folder that holds the manifest (:func:`default_export_dir`),
never inside the manifest (``load_dataset(<manifest>)`` would pick it up).

Parquet, Hugging Face export and ``push_to_hub`` need the ``export`` extra (``pip install 'lima-data[export]'``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .card import HF_SPLIT_NAMES, hf_features, meta_schema, normalise_meta, write_card
from .errors import LimaDataError
from .files import write_jsonl
from .manifest import SPLIT_FILES, load_manifest, read_split, sha256_file
from .manifest import row_problems as _row_problems

FORMATS = ("messages", "gair", "parquet", "hf")
log = logging.getLogger(__name__)

#: The source labels of LIMA's release (GAIR/lima train.jsonl).
GAIR_LABELS = ("stackexchange", "wikihow", "writingprompts", "nlp", "authors", "multi_turn")


def gair_label(row: dict[str, Any]) -> str:
    """GAIR/lima's ``source`` label of a manifest row.

    A row read from GAIR's own layout keeps its label (``meta["origin"]``, one of :data:`GAIR_LABELS`); else:
    ``stackexchange`` -> ``stackexchange``; ``wikihow`` -> ``wikihow``; ``reddit`` -> the subreddit lower-cased
    (``writingprompts``; ``askreddit`` for test prompts, which GAIR's train split has no label for: ours);
    ``natural_instructions`` -> ``nlp``; ``authored`` -> ``multi_turn`` when the conversation has more than one
    user turn, else ``authors``; any other source keeps its name.
    """
    origin = (row.get("meta") or {}).get("origin")
    if origin in GAIR_LABELS:
        return origin
    source = row["source"]
    if source == "reddit":
        return (row.get("domain") or "reddit").lower()
    if source == "natural_instructions":
        return "nlp"
    if source == "authored":
        users = sum(1 for m in row["messages"] if m["role"] == "user")
        return "multi_turn" if users > 1 else "authors"
    return source


def to_gair(row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row in LIMA's GAIR layout: ``{"conversations": [str, ...], "source": gair_label(row)}``."""
    return {"conversations": [m["content"] for m in row["messages"] if m["role"] != "system"],
            "source": gair_label(row)}


def default_export_dir(manifest: str | Path, fmt: str) -> Path:
    """Where ``lima-data export`` writes by default: ``<parent of the manifests folder>/exports/<name>/<fmt>``
    (``manifests/sample`` -> ``exports/sample/hf``), outside the manifest folder."""
    folder = Path(manifest).resolve()
    return folder.parent.parent / "exports" / folder.name / fmt


def _schema(manifest: dict[str, Any], splits: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The manifest's meta schema (manifest.json ``meta_schema``; computed from the rows for older manifests)."""
    schema = manifest.get("meta_schema") or meta_schema(r for rows in splits.values() for r in rows)
    for rows in splits.values():
        normalise_meta(rows, schema)
    return schema


def arrow_schema(schema: dict[str, str]):
    """The pyarrow schema of manifest rows with this ``meta`` schema (needs pyarrow)."""
    import pyarrow as pa

    kinds = {"bool": pa.bool_(), "int64": pa.int64(), "float64": pa.float64(), "string": pa.string(),
             "json": pa.string(), "list<string>": pa.list_(pa.string())}
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema([("id", pa.string()), ("source", pa.string()), ("domain", pa.string()),
                      ("messages", pa.list_(message)),
                      ("meta", pa.struct([(key, kinds[kind]) for key, kind in schema.items()]))])


def _non_empty(splits: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for split, rows in splits.items():
        if rows:
            out[split] = rows
        else:
            log.warning("%s: no rows; the split is left out of the export", split)
    return out


def export_manifest(path: str | Path, fmt: str, out: str | Path | None = None, *, quiet: bool = False) -> Path:
    """Write the manifest at ``path`` in format ``fmt`` to the folder ``out`` (default
    :func:`default_export_dir`; created; replaced atomically). Splits without rows are left out (logged).

    Args:
        quiet: no library progress bars (``datasets``).

    Raises:
        InputError: not a manifest, or a split file is bad.
        LimaDataError: unknown format, ``out`` is inside the manifest folder, or the format's library is not
            installed.
    """
    path = Path(path)
    manifest = load_manifest(path)
    if fmt not in FORMATS:
        raise LimaDataError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    out = Path(out) if out is not None else default_export_dir(path, fmt)
    if out.resolve() == path.resolve() or path.resolve() in out.resolve().parents:
        raise LimaDataError(f"{out}: an export inside the manifest folder would be read as part of the manifest "
                            "(and replaced by the next build); choose another --output")
    splits = _non_empty({split: read_split(path, split) for split in SPLIT_FILES})
    schema = _schema(manifest, splits)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        if fmt == "messages":
            for split, rows in splits.items():
                write_jsonl(tmp / SPLIT_FILES[split], rows)
            write_card(tmp, manifest, schema, {s: SPLIT_FILES[s] for s in splits}, _all(splits))
        elif fmt == "gair":
            if "dev" in splits:
                log.warning("gair: GAIR/lima has train and test only; the %d dev row(s) are not exported "
                            "(--format messages, parquet or hf keep them)", len(splits["dev"]))
            for split in ("train", "test"):
                if split in splits:
                    write_jsonl(tmp / SPLIT_FILES[split], (to_gair(r) for r in splits[split]))
        elif fmt == "parquet":
            write_parquet(splits, schema, tmp)
            write_card(tmp, manifest, schema, {s: f"{HF_SPLIT_NAMES[s]}.parquet" for s in splits}, _all(splits))
        else:
            try:
                import datasets
            except ImportError:
                raise LimaDataError("Hugging Face export needs datasets: pip install 'lima-data[export]'") from None
            if quiet:
                datasets.disable_progress_bars()
            features = hf_features(schema)
            datasets.DatasetDict({HF_SPLIT_NAMES[split]: datasets.Dataset.from_list(rows, features=features)
                                  for split, rows in splits.items()}).save_to_disk(str(tmp))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _all(splits: dict[str, list[dict[str, Any]]]):
    return (row for rows in splits.values() for row in rows)


def write_parquet(splits: dict[str, list[dict[str, Any]]], schema: dict[str, str], folder: Path) -> list[Path]:
    """Write ``<validation|train|test>.parquet`` per split into ``folder`` with :func:`arrow_schema`."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise LimaDataError("Parquet export needs pyarrow: pip install 'lima-data[export]'") from None
    arrow = arrow_schema(schema)
    files = []
    for split, rows in splits.items():
        file = folder / f"{HF_SPLIT_NAMES[split]}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow), file)
        files.append(file)
    return files


def push_to_hub(path: str | Path, repo: str, *, private: bool = False, api=None, token: str | None = None
                ) -> dict[str, Any]:
    """Upload the manifest at ``path`` to the Hugging Face Hub as the dataset repository ``repo``: the Parquet
    export (``train`` / ``validation`` / ``test``) and the dataset card, in one commit.

    Args:
        api: a ``huggingface_hub.HfApi`` (default: a new one with ``token``; tests pass a stand-in).
        private: create the repository private (an existing repository keeps its visibility).

    Returns:
        The upload plan: ``{"repo", "private", "files": [names], "commit_message"}``.

    Raises:
        LimaDataError: huggingface_hub is not installed, or the Hub refuses (the message says why).
    """
    path = Path(path)
    manifest = load_manifest(path)
    if api is None:
        try:
            from huggingface_hub import HfApi
        except ImportError:
            raise LimaDataError("--push-to-hub needs huggingface_hub: pip install 'lima-data[export]'") from None
        api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="lima-data-hub-") as tmp:
        folder = export_manifest(path, "parquet", Path(tmp) / "parquet", quiet=True)
        plan = {"repo": repo, "private": private, "files": sorted(p.name for p in folder.iterdir()),
                "commit_message": f"lima-data {manifest.get('lima_data_version', '')}: {manifest['name']} "
                                  f"(recipe sha256 {manifest.get('recipe_sha256', '')[:12]})"}
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                              commit_message=plan["commit_message"])
        except Exception as exc:  # huggingface_hub raises many types (HTTP, auth, validation)
            raise LimaDataError(f"push to the Hub repository {repo!r} failed: {exc}") from None
    return plan


def validate_manifest(path: str | Path) -> list[str]:
    """Check a manifest folder; return the problems found (empty when valid).

    Checks: manifest.json readable; each split file's sha256 and row count against manifest.json; every row has
    ``id``, ``source``, ``domain``, ``messages`` (a non-empty list of ``{"role", "content"}`` starting with a user
    turn, roles user / assistant / system, string contents) and ``meta`` (an object); ``domain`` a string or null;
    test rows may hold only the user turn, train and dev rows need an assistant turn; ids unique across splits. A
    split file that manifest.json does not list (a split without rows) need not exist.

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
            if recorded is not None:
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

