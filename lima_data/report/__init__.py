"""Report data of a built manifest: the funnel table and rejected candidates per reason (terminal output).

The HTML report with plots is a later issue; this module reads what every build writes: ``manifest.json``,
``report/stats.json`` and ``report/rejects/*.jsonl.zst``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..manifest import load_manifest
from ..pipeline import read_zstd_jsonl


def funnel_table(manifest: dict[str, Any], top_reasons: int = 3) -> Table:
    """A rich table of the funnel: per source and filter, candidates in, kept, dropped, and the top reasons."""
    table = Table(title=f"funnel of manifest {manifest['name']!r}", title_justify="left")
    for column, justify in (("source", "left"), ("filter", "left"), ("in", "right"), ("kept", "right"),
                            ("dropped", "right"), ("top drop reasons", "left")):
        table.add_column(column, justify=justify)
    for source, funnel in manifest["funnel"].items():
        for i, stage in enumerate(funnel["stages"]):
            dropped = sum(stage["dropped"].values())
            reasons = ", ".join(f"{r} {n}" for r, n in list(stage["dropped"].items())[:top_reasons])
            table.add_row(source if i == 0 else "", stage["filter"], str(stage["in"]), str(stage["kept"]),
                          str(dropped), reasons)
    return table


def counts_table(manifest: dict[str, Any]) -> Table:
    """Rows per split and domain, with the quotas and shortfalls."""
    table = Table(title="selected", title_justify="left")
    for column in ("split", "domain", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for split, counts in manifest["counts"].items():
        if not counts["total"]:
            continue
        for i, (domain, n) in enumerate(counts["by_domain"].items()):
            table.add_row(split if i == 0 else "", domain, str(n))
        table.add_row("", "[b]total[/]", f"[b]{counts['total']}[/]")
    return table


def iter_rejects(path: str | Path, *, filter_name: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rejected candidates of a manifest (optionally of one filter), as written by the build."""
    folder = Path(path) / "report" / "rejects"
    files = sorted(folder.glob("*.jsonl.zst")) if folder.is_dir() else []
    for file in files:
        if filter_name is None or file.name == f"{filter_name}.jsonl.zst":
            yield from read_zstd_jsonl(file)


def rejects_by_reason(path: str | Path, per_reason: int = 2) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The first ``per_reason`` rejects of every (filter, reason), in the order they were written."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in iter_rejects(path):
        key = (row["filter"], row["reason"])
        if len(out[key]) < per_reason:
            out[key].append(row)
    return dict(out)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_report(path: str | Path, console: Console, per_reason: int = 2) -> None:
    """Print the funnel, the selection and a few rejects per reason of the manifest at ``path``.

    Raises:
        InputError: ``path`` is not a manifest folder.
    """
    manifest = load_manifest(path)
    console.print(funnel_table(manifest))
    console.print(counts_table(manifest))
    for shortfall in manifest.get("shortfalls", []):
        console.print(f"[yellow]short:[/] {shortfall['source']} {shortfall['group']}: "
                      f"{shortfall['selected']} of {shortfall['wanted']}")
    for reader in manifest.get("readers", []):
        if reader["malformed"] or reader["truncated"]:
            console.print(f"[yellow]input:[/] {reader['shard']}: {reader['malformed']} malformed row(s)"
                          f"{', truncated' if reader['truncated'] else ''}")
    for (filter_name, reason), rows in rejects_by_reason(path, per_reason).items():
        items = []
        for row in rows:
            value = row["values"].get(filter_name)
            body = Text()
            body.append(f"{row['id']}", style="bold")
            body.append(f"  value={value!r}  score={row['score']}\n")
            body.append("prompt: ", style="cyan")
            body.append(_clip(row["prompt"], 160) + "\n")
            body.append("response: ", style="cyan")
            body.append(_clip(row["response"], 300) if row["response"] else "(not read)")
            items.append(body)
        console.print(Panel(Group(*items), title=f"{filter_name}: {reason}", title_align="left"))
