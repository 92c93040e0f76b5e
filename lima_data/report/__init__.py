"""Report data of a built manifest: the funnel table and rejected candidates per reason (terminal output).

The HTML report is :mod:`lima_data.report.html`; both read what every build writes: ``manifest.json``,
``report/stats.json``, ``report/measurements.jsonl.zst``, ``report/trace.jsonl.zst`` and
``report/rejects/*.jsonl.zst``.
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

from ..errors import InputError
from ..files import read_zstd_jsonl
from ..manifest import load_manifest


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
            table.add_row(split if i == 0 else "", domain_label(domain), str(n))
        table.add_row("", "[b]total[/]", f"[b]{counts['total']}[/]")
    return table


def iter_rejects(path: str | Path, *, filter_name: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield the rejected candidates of a manifest (optionally of one filter), as written by the build."""
    folder = Path(path) / "report" / "rejects"
    files = sorted(folder.glob("*.jsonl.zst")) if folder.is_dir() else []
    for file in files:
        if filter_name is None or file.name == f"{filter_name}.jsonl.zst":
            yield from read_zstd_jsonl(file)


#: How a blank domain (a wikiHow article without a category) is shown.
NO_CATEGORY = "(no category)"
#: Rejected candidates shown per (source, filter, reason), in the terminal and in the HTML report alike.
EXAMPLES = 3


def domain_label(domain: str | None) -> str:
    """A domain (site / category / subreddit) as shown: :data:`NO_CATEGORY` for a blank one or ``(none)``."""
    return domain if domain and domain != "(none)" else NO_CATEGORY


def rejects_by_source(path: str | Path, examples: int = EXAMPLES,
                      manifest: dict[str, Any] | None = None) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The first ``examples`` rejects of every (source, filter, reason), in the order they were written.

    With the ``manifest`` (its funnel counts the drops per source, filter and reason), reading a filter's rejects
    file stops once every (source, reason) the funnel counts for that filter has its ``examples`` (or all its
    drops): the rows shown then come from the head of the file, whatever its size (a file holds every drop of its
    filter, tens of MB on a big dump). A (source, filter, reason) the funnel does not count may then be missing.
    """
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    folder = Path(path) / "report" / "rejects"
    files = sorted(folder.glob("*.jsonl.zst")) if folder.is_dir() else []
    wanted: dict[str, dict[tuple[str, str, str], int]] = defaultdict(dict)  # per filter: rows still to find
    if manifest is not None:
        for source, funnel in manifest["funnel"].items():
            for stage in funnel["stages"]:
                for reason, count in stage["dropped"].items():
                    if min(examples, count) > 0:
                        wanted[stage["filter"]][(source, stage["filter"], reason)] = min(examples, count)
    for file in files:
        missing = dict(wanted[file.name[: -len(".jsonl.zst")]]) if manifest is not None else None
        if missing is not None and not missing:
            continue  # no drop of this filter is counted (or no example asked for): none of it is shown
        for row in read_zstd_jsonl(file):
            key = (row.get("source", ""), row["filter"], row["reason"])
            if len(out[key]) < examples:
                out[key].append(row)
                if missing is not None and key in missing:
                    missing[key] -= 1
                    if not missing[key]:
                        del missing[key]
                        if not missing:
                            break
    return dict(out)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _explained(row: dict[str, Any]) -> Text:
    """The matched spans a filter recorded for a drop, each in its context, the match in bold red."""
    out = Text()
    for item in row.get("match") or []:
        out.append(f"  {item.get('field', '')}: …{item.get('before', '')[-50:]}", style="dim")
        out.append(item["match"], style="bold red")
        out.append(f"{item.get('after', '')[:50]}…\n", style="dim")
    return out


def print_report(path: str | Path, console: Console, examples: int = EXAMPLES) -> None:
    """Print the funnel, the selection and ``examples`` rejects per reason and source of the manifest at ``path``
    (the HTML report shows the same ones): the matched span of a text rule, and the response cleaned to Markdown
    when it is still the post's HTML.

    Raises:
        InputError: ``path`` is not a manifest folder.
    """
    from .html import _cleaned

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
    if examples <= 0:
        return
    rejects = rejects_by_source(path, examples, manifest)
    for source, funnel in manifest["funnel"].items():
        for stage in funnel["stages"]:
            for reason, count in stage["dropped"].items():
                rows = rejects.get((source, stage["filter"], reason), [])
                items = []
                for row in rows:
                    value = row["values"].get(stage["filter"])
                    response, _ = _cleaned(row)
                    body = Text()
                    body.append(f"{row['id']}", style="bold")
                    body.append(f"  value={value!r}  score={row['score']}\n")
                    body.append(_explained(row))
                    body.append("prompt: ", style="cyan")
                    body.append(_clip(row["prompt"], 160) + "\n")
                    body.append("response: ", style="cyan")
                    body.append(_clip(response, 300) if response else "(none)")
                    items.append(body)
                if items:
                    console.print(Panel(Group(*items), title=f"{source} · {stage['filter']}: {reason} ({count}; "
                                        f"{len(items)} shown)", title_align="left"))


def _matches(row: dict[str, Any], source, reason, domain, split) -> bool:
    return ((source is None or row.get("source") == source)
            and (reason is None or reason in (row.get("reason"), row.get("filter")))
            and (domain is None or row.get("domain") == domain)
            and (split is None or row.get("split") == split))


def iter_rows(path: str | Path, what: str = "kept") -> Iterator[dict[str, Any]]:
    """Manifest rows (``what="kept"``, each with its ``split``), rejected candidates (``"rejects"``), or both
    (``"candidates"``: every candidate is one or the other)."""
    from ..manifest import SPLIT_FILES, read_split

    load_manifest(path)
    if what in ("kept", "candidates"):
        for split in SPLIT_FILES:
            for row in read_split(Path(path), split):
                yield {**row, "split": split}
    if what in ("rejects", "candidates"):
        yield from iter_rejects(path)


def _row_text(row: dict[str, Any]) -> tuple[str, str]:
    if "messages" in row:
        user = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
        assistant = next((m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant"), "")
        return user, assistant
    return row.get("prompt", ""), row.get("response", "")


def inspect_rows(path: str | Path, console: Console, *, what: str = "kept", source: str | None = None,
                 reason: str | None = None, domain: str | None = None, split: str | None = None,
                 row_id: str | None = None, offset: int = 0, limit: int = 20) -> int:
    """Print matching rows (a table page) or, with ``row_id``, one row in full. Returns the number shown.

    Raises:
        InputError: not a manifest folder, or ``row_id`` not found.
    """
    import json as _json

    if row_id is not None:
        for row in iter_rows(path, "candidates"):
            if row["id"] == row_id:
                prompt, response = _row_text(row)
                status = f"split {row['split']}" if "split" in row else f"rejected by {row['filter']}: {row['reason']}"
                console.print(Panel(Text(prompt), title=f"{row_id}  ({status})  prompt", title_align="left"))
                if "messages" in row and len(row["messages"]) > 2:
                    for m in row["messages"][1:]:
                        console.print(Panel(Text(m["content"]), title=m["role"], title_align="left"))
                else:
                    console.print(Panel(Text(response or "(none)"), title="response", title_align="left"))
                extra = {k: row[k] for k in ("meta", "values", "score") if k in row}
                console.print(Text(_json.dumps(extra, ensure_ascii=False, indent=2)))
                return 1
        raise InputError(path, f"no row or candidate with id {row_id!r}")
    table = Table(title=f"{what} of {Path(path).name}", title_justify="left")
    for column in ("#", "id", "where", "prompt", "response chars"):
        table.add_column(column, overflow="fold")
    shown = matched = 0
    for row in iter_rows(path, what):
        if not _matches(row, source, reason, domain, split):
            continue
        matched += 1
        if matched <= offset or shown >= limit:
            continue
        prompt, response = _row_text(row)
        where = row.get("split") or f"{row['filter']}:{row['reason']}"
        table.add_row(str(matched), row["id"], where, _clip(prompt, 80), str(len(response)))
        shown += 1
    console.print(table)
    console.print(f"{shown} shown of {matched} matching (offset {offset}); --offset {offset + shown} for more"
                  if matched > offset + shown else f"{shown} shown of {matched} matching")
    return shown
