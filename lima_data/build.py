"""`lima-data build`: dumps -> candidates -> filter chain -> selection -> manifest + report (DESIGN.md section 2).

Every per-shard step (read one site's dump, run the chain) depends only on the shard and the recipe; selection
runs on the small set of kept candidates. The manifest folder is written atomically (see
:class:`~lima_data.manifest.StagedManifest`).
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from . import __version__
from .candidate import Candidate, to_example
from .card import meta_schema, normalise_meta, write_card
from .errors import LimaDataError, RecipeError, ShortfallError, safe_text
from .executor import CACHE, TaskResult, concat_files, execute, make_chain, make_reader, merge_funnels, plan_tasks
from .filters.decontaminate import Decontaminate
from .filters.dedup import Dedup
from .filters.manual import Manual, read_ids
from .manifest import MANIFEST_FILE, SPLIT_FILES, StagedManifest, sha256_file, write_json, write_jsonl
from .pipeline import Chain, FilterStats, RejectSink, dumps, run_stage
from .recipe import Recipe, display_path
from .selection import GroupSelection, _group_split, assign_splits, phase_groups, phase_selection, select
from .sources import ReaderStats
from .sources.base import Shard, Source, discover

#: Candidate meta keys kept in rejects but left out of manifest rows (large, and the prompt when chosen).
MANIFEST_META_EXCLUDE = ("question_body",)
SELECTION_STAGE = "selection"
log = logging.getLogger(__name__)
SE = "stackexchange"


class EmptyBuildError(LimaDataError):
    """A build selected no row (and ``allow_empty`` was not given); the message says why."""


@dataclass
class BuildResult:
    """What a build produced: the manifest folder, its manifest.json and report stats, and the warnings
    (shortfalls, malformed rows, skipped inputs) that were also printed."""

    path: Path | None
    manifest: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def build(
    recipe: Recipe,
    *,
    inputs: Sequence[str | Path] | None = None,
    sources: Sequence[str] | None = None,
    out_dir: str | Path = "manifests",
    name: str | None = None,
    strict: bool = False,
    quiet: bool = False,
    console: Console | None = None,
    benchmarks: Sequence[str | Path] = (),
    keep: str | Path | None = None,
    drop: str | Path | None = None,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    dry_run: bool = False,
    allow_empty: bool = False,
    clean_cache: bool = False,
) -> BuildResult:
    """Build a manifest from ``inputs`` (or the recipe's default inputs) with ``recipe``.

    Args:
        inputs: archives, files or folders; ``None`` uses the recipe's ``inputs``.
        sources: run only these of the recipe's sources (default: all).
        out_dir: where ``<name>/`` is written.
        name: manifest folder name (default: the recipe's name).
        strict: malformed rows, truncated files and quota shortfalls become errors.
        quiet: no progress bars. Warnings go to the ``lima_data.build`` logger (and ``BuildResult.warnings``).
        benchmarks: files of prompts that no train row may overlap (added to the recipe's
            ``[decontamination] benchmarks``).
        keep, drop: files of candidate ids kept or dropped by hand (see :mod:`lima_data.filters.manual`).
        workers, executor, address: how per-shard tasks run (see :mod:`lima_data.executor`): in this process,
            in ``workers`` local processes, or on Ray (``executor="ray"``, ``address`` of a cluster or a local
            Ray with ``workers`` CPUs). Finished tasks are cached under ``<out_dir>/.lima-cache``: a build run
            again does only what was left.
        dry_run: only find the inputs: return a result whose ``path`` is ``None`` and whose ``manifest`` is
            ``{"dry_run": True, "shards": {source: [{"path", "kind", "domain", "size"}]}, "skipped": [path]}``
            (which source claimed which file, and the files no source claimed); nothing is read or written.
        allow_empty: write a manifest with no rows instead of raising :class:`EmptyBuildError`.
        clean_cache: remove ``<out_dir>/.lima-cache`` (task results, byte-range indexes, unpacked ``.7z``
            members) once the manifest is written; a failed or killed build keeps it for the next run.

    Raises:
        InputError: an input is missing or unreadable (the message names the file and line).
        ShortfallError: ``strict`` and a quota could not be filled.
        EmptyBuildError: no row was selected (no input found, or nothing passed the filters) and not
            ``allow_empty``; the message says why.
        RecipeError: ``sources`` names a source the recipe does not have.
    """
    console = console or Console(stderr=True)
    warnings: list[str] = []

    def warn(message: str) -> None:
        message = safe_text(message)  # a file name that is not UTF-8: escaped as in manifest.json
        warnings.append(message)
        log.warning(message)

    wanted = list(sources) if sources else list(recipe.sources)
    for source in wanted:
        if source not in recipe.sources:
            raise RecipeError(f"source {source!r} is not in recipe {recipe.name!r} (it has: {', '.join(recipe.sources)})")
    name = name or recipe.name
    started = time.perf_counter()
    timings: dict[str, float] = {}

    curation = {kind: {"file": display_path(Path(f)), "sha256": sha256_file(Path(f)), "ids": read_ids(f)}
                for kind, f in (("keep", keep), ("drop", drop)) if f is not None}
    manual = Manual(keep=curation.get("keep", {}).get("ids", []), drop=curation.get("drop", {}).get("ids", []))
    decontaminate = Decontaminate(recipe.data.get("decontamination"), benchmarks)
    decontaminate.load_benchmarks()  # before reading dumps: a bad file the user named fails at once
    ids = {kind: entry["ids"] for kind, entry in curation.items()}
    readers: dict[str, Source] = {}
    chains: dict[str, Chain] = {}
    for source in wanted:
        spec = recipe.sources[source]
        filters = make_chain(source, spec, recipe.seed, manual if curation else None)
        chains[source] = Chain(source, filters)
        readers[source] = make_reader(source, spec, recipe.seed, strict, filters)

    skipped: list[Path] = []
    if inputs:
        shards, skipped = discover(inputs, list(readers.values()), warn)
        if skipped and not dry_run:
            shown = ", ".join(display_path(p) for p in skipped[:5])
            warn(f"{len(skipped)} file(s) under the inputs belong to no source being built and were skipped: "
                 f"{shown}{', ...' if len(skipped) > 5 else ''} (all listed in manifest.json \"skipped\"; "
                 f"--dry-run shows which source claims which file)")
    else:
        shards = {}
        for source, reader in readers.items():
            found, _ = discover(recipe.source_inputs(source), [reader], warn)
            shards[source] = found[source]
    if dry_run:
        plan = {"dry_run": True,
                "shards": {source: [{"path": display_path(s.path) + (f"!{s.member}" if s.member else ""),
                                     "kind": s.kind, "domain": s.domain or None, "size": s.size}
                                    for s in shards[source]] for source in wanted},
                "skipped": [display_path(p) for p in skipped]}
        return BuildResult(path=None, manifest=plan, stats={}, warnings=warnings)
    missing = [source for source in wanted if not shards[source]]
    if len(missing) == len(wanted) and not allow_empty:
        raise EmptyBuildError(
            f"no input file was found for {', '.join(wanted)}"
            + (f" ({len(skipped)} file(s) under the inputs are no source's dump, e.g. {display_path(skipped[0])}; "
               "--dry-run lists them)" if skipped else "") + "; pass --allow-empty to write an empty manifest anyway")
    for source in missing:
        message = f"{source}: no input found for this source; its quotas stay empty"
        if strict:
            raise ShortfallError(f"strict: {message}")
        warn(message)
    site_group = next((f for f in chains.get(SE, Chain(SE, [])).filters if f.name == "site_group"), None)
    for shard in shards.get(SE, []):
        if site_group is not None and not site_group.listed(shard.domain):
            warn(f"site {shard.domain} is in no site list of the recipe: "
                 + ("dropped" if site_group.unlisted == "drop" else f"counted as {site_group.unlisted}"))
    tasks = {source: plan_tasks(source, shards[source], recipe.sources[source], recipe.seed, strict, ids)
             for source in wanted}

    def note(message: str) -> None:
        if not quiet:
            console.print(f"note: {message}", soft_wrap=True, highlight=False)

    with StagedManifest(Path(out_dir), name, note) as stage:
        sink = RejectSink(stage.path / "report")
        try:
            kept: dict[str, list[Candidate]] = {}
            reader_stats: dict[Shard, ReaderStats] = {}
            input_files: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            all_tasks = [t for source in wanted for t in tasks[source]]
            with _progress(console, quiet) as progress:
                reading = (f"reading {len(all_tasks)} task(s) with {workers} worker(s)"
                           f"{' on Ray' if executor == 'ray' else ''}")
                bar = progress.add_task(reading, total=sum(t.size for t in all_tasks) or None)

                def on_done(task, cached: bool) -> None:
                    progress.update(bar, completed=sum(done_sizes) + task.size)
                    done_sizes.append(task.size)

                done_sizes: list[int] = []
                results = execute(all_tasks, recipe.sources, recipe.seed, strict, ids, Path(out_dir) / CACHE,
                                  workers=workers, executor=executor, address=address,
                                  on_progress=lambda task, n: progress.advance(bar, n), on_done=on_done,
                                  on_stage=lambda text: progress.update(bar, description=text or reading))
            timings["read+filter"] = round(time.perf_counter() - t0, 3)
            by_source: dict[str, list[TaskResult]] = {s: [] for s in wanted}
            for task, result in zip(all_tasks, results):
                by_source[task.source].append(result)
            for name_ in sorted({f.name for result in results for f in result.funnel}):
                concat_files(results, f"rejects/{name_}.jsonl.zst", stage.path / "report" / "rejects" /
                             f"{name_}.jsonl.zst")
            concat_files(results, "measurements.jsonl.zst", stage.path / "report" / "measurements.jsonl.zst")
            concat_files(results, "trace.jsonl.zst", stage.path / "report" / "trace.jsonl.zst")
            matched = set().union(*(r.matched for r in results)) if results else set()
            for source in wanted:
                kept[source] = [c for result in by_source[source] for c in result.kept]
                if by_source[source]:
                    chains[source].candidates, chains[source].stats = merge_funnels(by_source[source])
                files: dict[tuple, Shard] = {}  # byte ranges of one file are reported as the file
                for result in by_source[source]:
                    for shard, stats in result.readers:
                        stats.shard = display_path(shard.path) + (f"!{shard.member}" if shard.member else "")
                        whole = files.setdefault((shard.path, shard.member), shard)
                        if whole in reader_stats:
                            reader_stats[whole].merge(stats)
                        else:
                            reader_stats[whole] = stats
                for shard in files.values():
                    stats = reader_stats[shard]
                    input_files.append({
                        "source": source,
                        **({"domain": shard.domain} if shard.domain else {}),
                        "path": display_path(shard.path),
                        "size": shard.path.stat().st_size,
                        "sha256": sha256_file(shard.path),
                    })
                    by_label = {k[len("skipped_"):]: n for k, n in stats.counts.items() if k.startswith("skipped_")}
                    if by_label:  # e.g. LIMA's release: community picks are rebuilt from dumps, not re-used
                        warn(f"{stats.shard}: {sum(by_label.values())} row(s) skipped, by label: "
                             + ", ".join(f"{k} {n}" for k, n in sorted(by_label.items()))
                             + " (not training rows; the file can serve as --reference or --benchmark)")
                    if stats.malformed or stats.truncated:
                        where = ", ".join((f"line {e['line']}: " if e['line'] is not None else "") + e['error']
                                          for e in stats.errors[:3])
                        warn(f"{stats.shard}: {stats.malformed} malformed row(s)"
                             f"{' and the file is truncated' if stats.truncated else ''} ({where})")

            t0 = time.perf_counter()
            dedup = Dedup(recipe.data.get("dedup"))
            result = dedup.run([c for source in wanted for c in kept[source]])
            stage_stats: dict[str, dict[str, FilterStats]] = {s: {} for s in wanted}
            kept = {source: run_stage(dedup.name, kept[source], result.decision,
                                      stage_stats[source], sink, frozenset({"duplicate_id"})) for source in wanted}
            with open(stage.path / "report" / "dedup_clusters.jsonl", "w", encoding="utf-8") as fh:
                for cluster in result.clusters:
                    fh.write(dumps(cluster) + "\n")
            timings["dedup"] = round(time.perf_counter() - t0, 3)

            t0 = time.perf_counter()
            selections: dict[str, list[GroupSelection]] = {s: [] for s in wanted}
            chosen: set[str] = set()
            for source in wanted:
                if recipe.sources[source]["selection"]["method"] == "split":
                    assign_splits(kept[source], recipe.sources[source]["selection"], recipe.seed)
            for phase in ("test", "train"):  # test prompts first: train is then cleaned against them
                if phase == "train":
                    decontaminate.add_references(c.prompt for gs in selections.values() for g in gs
                                                 if g.split == "test" for c in g.selected)
                    for source in wanted:
                        train_groups = phase_groups(recipe.sources[source]["selection"], "train")
                        kept[source] = run_stage(
                            decontaminate.name, kept[source],
                            lambda c: decontaminate(c) if c.id not in chosen and c.meta.get("group", "") in
                            train_groups else (None, None), stage_stats[source], sink)
                for source in wanted:
                    selection = phase_selection(recipe.sources[source]["selection"], phase)
                    if selection is None:
                        continue
                    pool = [c for c in kept[source] if c.id not in chosen]
                    groups = select(source, pool, selection, recipe.seed, readers[source].rank_key)
                    selections[source].extend(groups)
                    chosen |= {c.id for g in groups for c in g.selected}
            dev_fill = fill_dev_from_pool(recipe, wanted, kept, selections, chosen, warn)
            splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLIT_FILES}
            for source in wanted:
                order = list(recipe.sources[source]["selection"]["quotas"])
                selections[source].sort(key=lambda g: order.index(g.group) if g.group in order else len(order))
                for candidate in kept[source]:
                    if candidate.id not in chosen:
                        sink.reject(SELECTION_STAGE, candidate, "over_quota")
                for group in selections[source]:
                    if group.shortfall and source not in missing:
                        cause = shortfall_cause(source, group, by_source[source], chains[source])
                        warn(f"{source} {group.group}: quota {group.wanted}, only {len(group.selected)} candidates "
                             f"passed the filters (short by {group.shortfall}){cause}; writing what there is")
                    for candidate in group.selected:
                        row = to_example(candidate, prompt_only=group.prompt_only)
                        for key in MANIFEST_META_EXCLUDE:
                            row["meta"].pop(key, None)
                        splits[group.split].append(row)
            timings["selection"] = round(time.perf_counter() - t0, 3)
        finally:
            sink.close()

        shortfalls = [g.to_dict() for gs in selections.values() for g in gs if g.shortfall]
        if strict and shortfalls:
            raise ShortfallError(
                "strict: quotas not filled: "
                + "; ".join(f"{s['source']} {s['group']} {s['selected']}/{s['wanted']}" for s in shortfalls)
            )

        if not any(splits.values()) and not allow_empty:
            why = ("no candidate passed the filters and selection (see the funnel with "
                   "`lima-data build --allow-empty`, then `lima-data report`)")
            raise EmptyBuildError(f"the build selected no row: {why}; pass --allow-empty to write an empty "
                                  "manifest anyway")

        t0 = time.perf_counter()
        files: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        schema = meta_schema(row for rows in splits.values() for row in rows)
        written: dict[str, str] = {}
        for split, rows in splits.items():
            rows.sort(key=lambda r: r["id"])
            normalise_meta(rows, schema)
            counts[split] = {
                "total": len(rows),
                "by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
                "by_domain": dict(sorted(Counter(r["domain"] or "null" for r in rows).items())),
            }
            if not rows:
                warn(f"{split}: no rows; {SPLIT_FILES[split]} is not written (an empty split file breaks "
                     "datasets.load_dataset) and the split is left out of the dataset card and exports")
                continue
            path = stage.path / SPLIT_FILES[split]
            write_jsonl(path, rows)
            written[split] = SPLIT_FILES[split]
            files[SPLIT_FILES[split]] = {"rows": len(rows), "sha256": sha256_file(path)}
        funnel = {}
        for source in wanted:
            chain = chains[source]
            filters = chain.funnel() + [st.to_dict() for st in stage_stats[source].values()]
            stages = [{k: v for k, v in f.items() if k not in ("values", "seconds")} for f in filters]
            after_filters = len(kept[source])
            selected = sum(len(g.selected) for g in selections[source])
            stages.append({"filter": SELECTION_STAGE, "in": after_filters, "kept": selected,
                           "dropped": {"over_quota": after_filters - selected} if after_filters - selected else {}})
            funnel[source] = {"candidates": chain.candidates, "stages": stages}
        timings["write"] = round(time.perf_counter() - t0, 3)
        timings["total"] = round(time.perf_counter() - started, 3)

        report_stats = {
            "funnel": {s: {"candidates": chains[s].candidates,
                           "filters": chains[s].funnel() + [st.to_dict() for st in stage_stats[s].values()]}
                       for s in wanted},
            "dedup": {"clusters": len(result.clusters),
                      "duplicates": sum(c["size"] - 1 for c in result.clusters)},
            "decontamination": {"ngram": decontaminate.n, "reference_prompts": decontaminate.references,
                                "benchmarks": [display_path(p) for p in decontaminate.benchmarks]},
            "selection": {s: [g.to_dict() for g in gs] for s, gs in selections.items()},
            "readers": [r.to_dict() for r in reader_stats.values()],
            "rejects": sink.files(),
            "timings": timings,
        }
        write_json(stage.path / "report" / "stats.json", report_stats)
        for entry in curation.values():
            entry["missing"] = [i for i in entry["ids"] if i not in matched]
            if entry["missing"]:
                warn(f"{len(entry['missing'])} id(s) of {entry['file']} match no candidate, e.g. {entry['missing'][0]}")
        manifest = {
            "name": name,
            "lima_data_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "recipe": recipe.data,
            "recipe_sha256": recipe.sha256(),
            "seed": recipe.seed,
            "sources": wanted,
            "inputs": input_files,
            "files": files,
            "counts": counts,
            "funnel": funnel,
            "selection": report_stats["selection"],
            "shortfalls": shortfalls,
            "dev_fill": dev_fill,
            "meta_schema": schema,
            "skipped": [display_path(p) for p in skipped],
            "curation": curation,
            "readers": [
                {k: r.to_dict()[k] for k in ("shard", "rows", "counts", "malformed", "truncated")}
                for r in reader_stats.values()
            ],
            "warnings": warnings,
        }
        write_json(stage.path / MANIFEST_FILE, manifest)
        write_card(stage.path, manifest, schema, written, (r for rows in splits.values() for r in rows))
        kept_files = carry_over(stage.final, stage.path)
        if kept_files:
            shown = ", ".join(kept_files[:5]) + (", ..." if len(kept_files) > 5 else "")
            warn(f"kept {len(kept_files)} file(s) of the previous {name} that this build does not write: {shown} "
                 "(they describe the previous build; delete them if they are stale)")
        path = stage.commit()
    if clean_cache:
        shutil.rmtree(Path(out_dir) / CACHE, ignore_errors=True)
    return BuildResult(path=path, manifest=manifest, stats=report_stats, warnings=warnings)


def recipe_dev_quota(recipe: Recipe) -> int:
    """Rows the recipe wants in dev: the sum of its quotas whose split is ``dev`` (every source of the recipe,
    built or not). LIMA: 50 authored."""
    total = 0
    for spec in recipe.sources.values():
        selection = spec["selection"]
        for group, count in selection["quotas"].items():
            if selection.get("method") == "split":
                split = group
            else:
                split = selection.get("splits", {}).get(group, selection.get("split", "train"))
            total += count if split == "dev" else 0
    return total


def fill_dev_from_pool(recipe: Recipe, wanted: Sequence[str], kept: dict[str, list[Candidate]],
                       selections: dict[str, list[GroupSelection]], chosen: set[str], warn) -> dict[str, Any]:
    """Fill what the dev quota lacks from the curated pool, when the recipe's ``[dev_fill] from_pool`` is on.

    The pool is every candidate that passed its source's filters, dedup and decontamination, belongs to a group
    whose split is train and has a response, and was not selected (so never a train or test row). The rows taken
    are a seeded shuffle of the pool (sorted by id first, so the result depends only on the candidates and seed);
    each gets ``meta["dev_from_pool"] = True`` and the source gets a ``dev_from_pool`` group in the selection.
    Changes ``selections`` and ``chosen`` in place.

    Returns:
        ``{"wanted", "authored", "filled", "by_source"}`` (recorded in manifest.json as ``dev_fill``); ``{}`` when
        the option is off or dev is full.
    """
    settings = recipe.data.get("dev_fill", {})
    want = recipe_dev_quota(recipe)
    have = sum(len(g.selected) for gs in selections.values() for g in gs if g.split == "dev")
    if not settings.get("from_pool") or have >= want:
        return {}
    pool = []
    for source in wanted:
        selection = recipe.sources[source]["selection"]
        train_groups = {g for g in selection["quotas"] if _group_split(selection, g) == "train"} - set(
            selection.get("prompt_only", []))
        pool += [c for c in kept[source] if c.id not in chosen and c.response
                 and c.meta.get("group", "") in train_groups]
    pool.sort(key=lambda c: c.id)
    random.Random(f"{recipe.seed}:dev_fill").shuffle(pool)
    taken = pool[: want - have]
    by_source: dict[str, list[Candidate]] = {}
    for candidate in taken:
        candidate.meta["dev_from_pool"] = True
        by_source.setdefault(candidate.source, []).append(candidate)
        chosen.add(candidate.id)
    for source, picked in by_source.items():
        selections[source].append(GroupSelection(source=source, group="dev_from_pool", wanted=len(picked),
                                                 split="dev", available=len(picked), selected=picked))
    counts = {s: len(c) for s, c in sorted(by_source.items())}
    if taken:
        warn(f"dev: {have} of {want} rows from authored data; filled {len(taken)} from the curated pool (never "
             f"train or test rows: {', '.join(f'{s} {n}' for s, n in counts.items())}); set [dev_fill] "
             "from_pool = false in the recipe to keep dev to authored rows")
    else:
        warn(f"dev: {have} of {want} rows from authored data, and the curated pool is empty (the train quotas took "
             "every candidate that passed), so dev stays short")
    return {"wanted": want, "authored": have, "filled": len(taken), "by_source": counts}


def shortfall_cause(source: str, group: GroupSelection, results: list[TaskResult], chain: Chain) -> str:
    """A short phrase (``"": no cause known``) saying why a quota came up short when the cause is structural:
    no comments in the Reddit inputs for a group of pairs, no candidate of the group at all, or the filter that
    dropped the most candidates of the source."""
    counts: Counter[str] = Counter()
    for result in results:
        for _, stats in result.readers:
            counts.update(stats.counts)
    if source == "reddit" and not group.prompt_only and counts.get("comments", 0) == 0:
        others = counts.get("other_subreddits", 0)
        return (f": no comments of the recipe's subreddits in the inputs"
                f"{f' ({others} rows of other subreddits skipped)' if others else ''}; pairs need a comments dump "
                f"(RC_YYYY-MM.zst or <subreddit>_comments.zst) beside the submissions")
    if group.available == 0 and not any(result.readers for result in results):
        return ": nothing was read for this source"
    worst = max(((stage["filter"], reason, n) for stage in chain.funnel() for reason, n in
                 stage.get("dropped", {}).items()), key=lambda t: t[2], default=None)
    if group.available == 0 and worst is not None:
        return f": no candidate of this group passed; the most drops were {worst[0]} / {worst[1]} ({worst[2]})"
    return ""


def carry_over(old: Path, new: Path) -> list[str]:
    """Move into ``new`` the files and folders of the manifest folder ``old`` (the previous build) that the new
    build did not write (an export inside it, a report.html, a user's notes), so that replacing the folder
    deletes nothing it did not write. Returns their paths relative to the folder, sorted; ``[]`` when ``old``
    does not exist."""
    if not old.is_dir():
        return []
    moved: list[Path] = []
    for entry in sorted(old.rglob("*")):
        rel = entry.relative_to(old)
        target = new / rel
        if target.exists() or any(parent in moved for parent in rel.parents):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(entry, target)
        moved.append(rel)
    return [rel.as_posix() + ("/" if (new / rel).is_dir() else "") for rel in moved]
