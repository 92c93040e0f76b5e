"""The HTML report of a manifest: one self-contained file (inline CSS and SVG; no script, no network).

Sections: summary, funnel per source, composition against the recipe's quotas, measured values per filter as
histograms with the recipe's thresholds marked, dedup clusters, timings, a few rejected candidates per drop reason
(all text escaped by Jinja2's autoescape), and, with a reference set, lengths and composition side by side.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from ..errors import InputError
from ..manifest import SPLIT_FILES, load_manifest, read_jsonl, read_split
from ..pipeline import read_zstd_jsonl
from . import rejects_by_reason
from .plots import histogram_svg

REPORT_FILE = "report.html"


def _numbers(value: Any) -> dict[str | None, float]:
    """Numeric parts of a measured value: ``{None: x}`` for a number, ``{key: x}`` for a dict's numbers."""
    if isinstance(value, bool) or value is None:
        return {}
    if isinstance(value, (int, float)):
        return {None: float(value)}
    if isinstance(value, dict):
        return {k: float(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {}


def thresholds_for(settings: dict[str, Any], key: str | None) -> list[tuple[str, float]]:
    """The settings that bound a measured number: every numeric ``min_*`` / ``max_*`` for a plain value;
    ``min_<key>`` / ``max_<key>`` for a dict value's ``key``."""
    out = []
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key is None and name.startswith(("min_", "max_")):
            out.append((name, float(value)))
        elif key is not None and name in (f"min_{key}", f"max_{key}"):
            out.append((name, float(value)))
    return out


def _effective_settings(manifest: dict[str, Any], source: str, filter_name: str) -> dict[str, Any]:
    """A filter's settings as the build used them: the recipe's, over the filter's defaults."""
    from ..errors import RecipeError
    from ..filters import build_filter

    settings = manifest["recipe"]["sources"].get(source, {}).get("filters", {}).get(filter_name, {})
    try:
        return build_filter(filter_name, settings, manifest.get("seed", 0)).settings
    except RecipeError:  # a stage that is not a registered filter, or a recipe from another version
        return settings


def _histograms(path: Path, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    values: dict[tuple[str, str, str | None], list[float]] = defaultdict(list)
    measurements = path / "report" / "measurements.jsonl.zst"
    if measurements.is_file():
        for row in read_zstd_jsonl(measurements):
            for filter_name, value in row["values"].items():
                for key, number in _numbers(value).items():
                    values[(row.get("source", ""), filter_name, key)].append(number)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (source, filter_name, key), numbers in sorted(values.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or "")):
        if len(set(numbers)) < 2:
            continue  # one value for everyone (e.g. no PII found): nothing to plot
        lines = thresholds_for(_effective_settings(manifest, source, filter_name), key)
        out[source].append({
            "title": filter_name + (f" · {key}" if key else ""),
            "count": len(numbers),
            "svg": histogram_svg({filter_name: numbers}, lines),
            "thresholds": lines,
        })
    return dict(out)


def _responses(rows: list[dict[str, Any]]) -> list[int]:
    return [len(next((m["content"] for m in reversed(r["messages"]) if m["role"] == "assistant"), ""))
            for r in rows]


def load_reference(path: str | Path) -> tuple[str, list[dict[str, Any]]]:
    """Rows of a reference set as ``(label, [{"source", "messages"}])``: a manifest folder (its train split) or a
    JSONL file in GAIR's layout (``conversations``, ``source``) or the messages layout.

    Raises:
        InputError: the path is neither, or a line is not JSON (file and line named).
    """
    from ..sources.jsonl import row_messages

    path = Path(path)
    if path.is_dir():
        load_manifest(path)
        path = path / SPLIT_FILES["train"]
    if not path.is_file():
        raise InputError(path, "reference not found (a manifest folder or a JSONL file)")
    rows = []
    for line, row in read_jsonl(path):
        try:
            rows.append({"source": str(row.get("source", "")), "messages": row_messages(row)})
        except (ValueError, AttributeError) as exc:
            raise InputError(path, f"not a reference row: {exc}", line) from None
    return path.name if path.name != SPLIT_FILES["train"] else path.parent.name, rows


def build_report(path: str | Path, reference: str | Path | None = None, per_reason: int = 3) -> Path:
    """Write ``report/report.html`` for the manifest at ``path`` and return its path.

    Raises:
        InputError: ``path`` is not a manifest folder, or the reference cannot be read.
    """
    path = Path(path)
    manifest = load_manifest(path)
    stats_file = path / "report" / "stats.json"
    stats = _read_json(stats_file) if stats_file.is_file() else {}
    if not isinstance(stats, dict):
        raise InputError(stats_file, "damaged (a JSON object is expected); build the manifest again")
    splits = {split: read_split(path, split) for split in SPLIT_FILES}

    clusters = []
    clusters_file = path / "report" / "dedup_clusters.jsonl"
    if clusters_file.is_file():
        clusters = [cluster for _, cluster in read_jsonl(clusters_file)]

    comparison = None
    if reference is not None:
        label, ref_rows = load_reference(reference)
        ours = splits["train"]
        comparison = {
            "label": label,
            "rows": len(ref_rows),
            "ours": len(ours),
            "svg": histogram_svg({manifest["name"]: _responses(ours), label: _responses(ref_rows)},
                                 bins=30, density=True),
            "composition": sorted(
                set(Counter(r["source"] for r in ours)) | set(Counter(r["source"] for r in ref_rows))),
            "ours_by_source": Counter(r["source"] for r in ours),
            "ref_by_source": Counter(r["source"] for r in ref_rows),
            "ours_mean": _mean(_responses(ours)),
            "ref_mean": _mean(_responses(ref_rows)),
        }

    env = Environment(loader=PackageLoader("lima_data", "report/templates"), autoescape=select_autoescape(["j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("report.html.j2").render(
        manifest=manifest,
        stats=stats,
        histograms=_histograms(path, manifest),
        rejects=rejects_by_reason(path, per_reason),
        clusters=clusters[:100],
        cluster_count=len(clusters),
        comparison=comparison,
        response_svg=histogram_svg({s: _responses(rows) for s, rows in splits.items() if _responses(rows)
                                    and any(_responses(rows))}),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        clip=lambda text, n=600: text if len(text) <= n else text[: n - 1] + "…",
    )
    out = path / "report" / REPORT_FILE
    out.parent.mkdir(exist_ok=True)
    tmp = out.with_suffix(".html.tmp")
    try:  # written whole, then renamed: a full disk leaves the previous report as it was
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _read_json(file: Path) -> Any:
    """A JSON file of the manifest's report.

    Raises:
        InputError: not UTF-8 or not JSON (the file named).
    """
    try:
        return json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(file, f"damaged ({exc}); build the manifest again") from None


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0
