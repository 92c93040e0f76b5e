"""`lima-data build`: dumps -> candidates -> filter chain -> selection -> manifest + report (DESIGN.md section 2).

Every per-shard step (read one site's dump, run the chain) depends only on the shard and the recipe; selection
runs on the small set of kept candidates. The manifest folder is written atomically (see
:class:`~lima_data.manifest.StagedManifest`).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from . import __version__
from .candidate import Candidate, to_example
from .card import meta_schema, normalise_meta, write_card
from .errors import EmptyBuildError, RecipeError, ShortfallError, safe_text
from .executor import CACHE, BuildPlan, Merged, TaskResult, merge_results, plan_build, read_and_filter
from .files import write_json, write_jsonl
from .filters.decontaminate import Decontaminate
from .filters.dedup import DedupStage, dedup_stage
from .filters.manual import read_ids
from .manifest import MANIFEST_FILE, SPLIT_FILES, StagedManifest, sha256_file
from .pipeline import Chain, RejectSink
from .recipe import Recipe, SourceSpec, display_path
from .selection import (
    DecontaminationStage,
    GroupSelection,
    Selection,
    assign_split_groups,
    decontaminate_train,
    fill_dev_from_pool,
    select_phase,
)

__all__ = ["BuildResult", "EmptyBuildError", "build"]

#: Candidate meta keys kept in rejects but left out of manifest rows (large, and the prompt when chosen).
MANIFEST_META_EXCLUDE = ("question_body",)
SELECTION_STAGE = "selection"
log = logging.getLogger(__name__)


@dataclass
class BuildResult:
    """What a build produced: the manifest folder, its manifest.json and report stats, and the warnings
    (shortfalls, malformed rows, skipped inputs) that were also printed."""

    path: Path | None
    manifest: dict[str, Any]
    stats: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


class Warnings(list):
    """The build's warnings, in the order given: call it with a message to log it to ``lima_data.build`` and
    keep it (a file name that is not UTF-8 is escaped as in manifest.json)."""

    def __call__(self, message: str) -> None:
        message = safe_text(message)
        self.append(message)
        log.warning(message)


class Timer:
    """Runs the build's stages and keeps each one's wall time in ``timings`` (seconds, 3 decimals), in order."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            self.timings[stage] = round(self.timings.get(stage, 0) + time.perf_counter() - t0, 3)

    def total(self) -> dict[str, float]:
        """``timings`` with ``total``: the seconds since the build started."""
        self.timings["total"] = round(time.perf_counter() - self.started, 3)
        return self.timings


def wanted_sources(recipe: Recipe, sources: Sequence[str] | None) -> list[str]:
    """The sources to build, in the order asked (default: all of the recipe's).

    Raises:
        RecipeError: a source the recipe does not have.
    """
    wanted = list(sources) if sources else list(recipe.sources)
    for source in wanted:
        if source not in recipe.sources:
            raise RecipeError(f"source {source!r} is not in recipe {recipe.name!r} (it has: {', '.join(recipe.sources)})")
    return wanted


def read_curation(keep: str | Path | None, drop: str | Path | None) -> dict[str, dict[str, Any]]:
    """The keep / drop lists given: ``{kind: {"file", "sha256", "ids"}}`` (recorded in manifest.json as
    ``curation``).

    Raises:
        InputError: a file is missing or unreadable (see :func:`~lima_data.filters.manual.read_ids`).
    """
    return {kind: {"file": display_path(Path(f)), "sha256": sha256_file(Path(f)), "ids": read_ids(f)}
            for kind, f in (("keep", keep), ("drop", drop)) if f is not None}


def selection_rows(plan: BuildPlan, merged: Merged, kept: dict[str, list[Candidate]], selection: Selection,
                   specs: dict[str, SourceSpec], sink: RejectSink, warn: Callable[[str], None]
                   ) -> dict[str, list[dict[str, Any]]]:
    """The rows stage: per split, the manifest rows of the selected candidates (:func:`to_example`, less
    ``MANIFEST_META_EXCLUDE``), each source's groups in its quotas' order (``selection`` is sorted so in place);
    the kept candidates not selected go to ``sink`` as ``selection`` / ``over_quota``; each short quota of a
    source that had inputs gets a warning with its cause (:func:`shortfall_cause`)."""
    splits: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLIT_FILES}
    for source, groups in selection.groups.items():
        order = list(specs[source].selection.quotas)
        groups.sort(key=lambda g: order.index(g.group) if g.group in order else len(order))
        for candidate in kept[source]:
            if candidate.id not in selection.chosen:
                sink.reject(SELECTION_STAGE, candidate, "over_quota")
        for group in groups:
            if group.shortfall and source not in plan.missing:
                cause = shortfall_cause(source, group, merged.results[source], plan.chains[source])
                warn(f"{source} {group.group}: quota {group.wanted}, only {len(group.selected)} candidates "
                     f"passed the filters (short by {group.shortfall}){cause}; writing what there is")
            for candidate in group.selected:
                row = to_example(candidate, prompt_only=group.prompt_only)
                for key in MANIFEST_META_EXCLUDE:
                    row["meta"].pop(key, None)
                splits[group.split].append(row)
    return splits


def check_rows(rows: dict[str, list[dict[str, Any]]], selection: Selection, *, strict: bool,
               allow_empty: bool) -> None:
    """Stop the build before anything is written when it must not go on.

    Raises:
        ShortfallError: ``strict`` and a quota was not filled.
        EmptyBuildError: no row was selected and not ``allow_empty``.
    """
    shortfalls = selection.shortfalls()
    if strict and shortfalls:
        raise ShortfallError(
            "strict: quotas not filled: "
            + "; ".join(f"{s['source']} {s['group']} {s['selected']}/{s['wanted']}" for s in shortfalls)
        )
    if not any(rows.values()) and not allow_empty:
        why = ("no candidate passed the filters and selection (see the funnel with "
               "`lima-data build --allow-empty`, then `lima-data report`)")
        raise EmptyBuildError(f"the build selected no row: {why}; pass --allow-empty to write an empty "
                              "manifest anyway")


@dataclass
class Funnel:
    """Per source: the candidates read, then one stats row per filter of its chain, dedup and decontamination
    (from what those stages returned), then the selection (kept candidates in, rows selected)."""

    candidates: dict[str, int]
    filters: dict[str, list[dict[str, Any]]]
    selection: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, plan: BuildPlan, dedup: DedupStage, clean: DecontaminationStage, selection: Selection) -> Funnel:
        filters = {s: plan.chains[s].funnel() + [dedup.stats[s].to_dict(), clean.stats[s].to_dict()]
                   for s in plan.sources}
        chosen = {}
        for s in plan.sources:
            entered, selected = len(clean.kept[s]), sum(len(g.selected) for g in selection.groups[s])
            chosen[s] = {"filter": SELECTION_STAGE, "in": entered, "kept": selected,
                         "dropped": {"over_quota": entered - selected} if entered - selected else {}}
        return cls({s: plan.chains[s].candidates for s in plan.sources}, filters, chosen)

    def report(self) -> dict[str, Any]:
        """report/stats.json ``funnel``: per source ``{"candidates", "filters"}`` with value summaries."""
        return {s: {"candidates": n, "filters": self.filters[s]} for s, n in self.candidates.items()}

    def manifest(self) -> dict[str, Any]:
        """manifest.json ``funnel``: per source ``{"candidates", "stages"}``, without values and seconds."""
        return {s: {"candidates": n,
                    "stages": [{k: v for k, v in f.items() if k not in ("values", "seconds")}
                               for f in self.filters[s]] + [self.selection[s]]}
                for s, n in self.candidates.items()}


@dataclass
class Written:
    """What the write stage wrote: ``files`` (``{file: {"rows", "sha256"}}``), ``counts`` per split (``total``,
    ``by_source``, ``by_domain``), the rows' meta schema, and the split files written (``{split: file}``)."""

    files: dict[str, Any]
    counts: dict[str, Any]
    schema: dict[str, Any]
    splits: dict[str, str]


def write_splits(folder: Path, rows: dict[str, list[dict[str, Any]]], warn: Callable[[str], None]) -> Written:
    """The write stage: sort each split's rows by id, give every row the same meta keys (:func:`normalise_meta`)
    and write each split that has rows as JSON lines (an empty split file breaks ``datasets.load_dataset``)."""
    written = Written({}, {}, meta_schema(row for split in rows.values() for row in split), {})
    for split, split_rows in rows.items():
        split_rows.sort(key=lambda r: r["id"])
        normalise_meta(split_rows, written.schema)
        written.counts[split] = {
            "total": len(split_rows),
            "by_source": dict(sorted(Counter(r["source"] for r in split_rows).items())),
            "by_domain": dict(sorted(Counter(r["domain"] or "null" for r in split_rows).items())),
        }
        if not split_rows:
            warn(f"{split}: no rows; {SPLIT_FILES[split]} is not written (an empty split file breaks "
                 "datasets.load_dataset) and the split is left out of the dataset card and exports")
            continue
        path = folder / SPLIT_FILES[split]
        write_jsonl(path, split_rows)
        written.splits[split] = SPLIT_FILES[split]
        written.files[SPLIT_FILES[split]] = {"rows": len(split_rows), "sha256": sha256_file(path)}
    return written


def write_manifest(stage: StagedManifest, recipe: Recipe, plan: BuildPlan, merged: Merged, funnel: Funnel,
                   dedup: DedupStage, decontaminate: Decontaminate, selection: Selection,
                   rows: dict[str, list[dict[str, Any]]], written: Written, rejects: dict[str, int],
                   timings: dict[str, float], warnings: Warnings) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Write report/stats.json, manifest.json (DESIGN.md section 5) and the dataset card from what the stages
    returned, move over the files of the previous build this one did not write (:func:`carry_over`) and commit
    the folder. Returns the folder, the manifest and the report stats."""
    stats = {
        "funnel": funnel.report(),
        "dedup": dedup.summary(),
        "decontamination": {"ngram": decontaminate.n, "reference_prompts": decontaminate.references,
                            "benchmarks": [display_path(p) for p in decontaminate.benchmarks]},
        "selection": selection.summary(),
        "readers": [r.to_dict() for r in merged.readers.values()],
        "rejects": rejects,
        "timings": timings,
    }
    write_json(stage.path / "report" / "stats.json", stats)
    for entry in plan.curation.values():
        entry["missing"] = [i for i in entry["ids"] if i not in merged.matched]
        if entry["missing"]:
            warnings(f"{len(entry['missing'])} id(s) of {entry['file']} match no candidate, e.g. {entry['missing'][0]}")
    manifest = {
        "name": stage.final.name,
        "lima_data_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recipe": recipe.data,
        "recipe_sha256": recipe.sha256(),
        "seed": recipe.seed,
        "sources": plan.sources,
        "inputs": merged.inputs,
        "files": written.files,
        "counts": written.counts,
        "funnel": funnel.manifest(),
        "selection": stats["selection"],
        "shortfalls": selection.shortfalls(),
        "dev_fill": selection.dev_fill,
        "meta_schema": written.schema,
        "skipped": [display_path(p) for p in plan.skipped],
        "curation": plan.curation,
        "readers": [
            {k: r.to_dict()[k] for k in ("shard", "rows", "counts", "malformed", "truncated")}
            for r in merged.readers.values()
        ],
        "warnings": list(warnings),
    }
    write_json(stage.path / MANIFEST_FILE, manifest)
    write_card(stage.path, manifest, written.schema, written.splits, (r for split in rows.values() for r in split))
    carried = carry_over(stage.final, stage.path)
    kept_files = [rel.as_posix() + ("/" if (stage.final / rel).is_dir() else "") for rel in carried]
    if kept_files:
        shown = ", ".join(kept_files[:5]) + (", ..." if len(kept_files) > 5 else "")
        warnings(f"kept {len(kept_files)} file(s) of the previous {stage.final.name} that this build does not write: "
                 f"{shown} (they describe the previous build; delete them if they are stale)")
    return stage.commit(carry=carried), manifest, stats


def _note(console: Console, quiet: bool) -> Callable[[str], None]:
    def note(message: str) -> None:
        if not quiet:
            console.print(f"note: {message}", soft_wrap=True, highlight=False)
    return note


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

    The build is a chain of stages, each timed (``report/stats.json`` ``timings``, seconds) and each returning
    what the next one and the report need: plan (:func:`~lima_data.executor.plan_build`) -> read+filter, per
    task (:func:`~lima_data.executor.read_and_filter`) -> merge (:func:`~lima_data.executor.merge_results`) ->
    dedup (:func:`~lima_data.filters.dedup.dedup_stage`) -> split assignment, test selection, decontamination,
    train/dev selection and the dev fill (:mod:`lima_data.selection`) -> rows (:func:`selection_rows`) -> write
    (:func:`write_manifest`).

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
    console, warnings, timer = console or Console(stderr=True), Warnings(), Timer()
    wanted = wanted_sources(recipe, sources)
    curation = read_curation(keep, drop)
    decontaminate = Decontaminate(recipe.spec.decontamination.settings(), benchmarks)
    decontaminate.load_benchmarks()  # before reading dumps: a bad file the user named fails at once
    plan = timer("plan", plan_build, recipe, wanted, inputs, curation, strict=strict, allow_empty=allow_empty,
                 dry_run=dry_run, warn=warnings)
    if dry_run:
        return BuildResult(path=None, manifest=plan.dry_run(), stats={}, warnings=list(warnings))
    specs, seed = recipe.sources, recipe.seed
    with StagedManifest(Path(out_dir), name or recipe.name, _note(console, quiet)) as stage:
        report = stage.path / "report"
        with closing(RejectSink(report)) as sink:
            with _progress(console, quiet) as progress:
                results = timer("read+filter", read_and_filter, plan, recipe, Path(out_dir) / CACHE, strict=strict,
                                workers=workers, executor=executor, address=address, progress=progress)
            merged = timer("merge", merge_results, plan, results, report, warnings)
            dedup = timer("dedup", dedup_stage, merged.kept, recipe.spec.dedup.settings(), sink, report)
            timer("assign_splits", assign_split_groups, dedup.kept, specs, seed, warnings)
            rank_keys = {source: reader.rank_key for source, reader in plan.readers.items()}
            test = timer("select_test", select_phase, "test", dedup.kept, specs, seed, rank_keys)
            clean = timer("decontamination", decontaminate_train, decontaminate, dedup.kept, specs, test, sink)
            selection = timer("select_train", select_phase, "train", clean.kept, specs, seed, rank_keys, test)
            selection = timer("dev_fill", fill_dev_from_pool, specs, recipe.spec.dev_fill, seed,
                              clean.kept, selection, warnings)
            rows = timer("rows", selection_rows, plan, merged, clean.kept, selection, specs, sink, warnings)
        check_rows(rows, selection, strict=strict, allow_empty=allow_empty)
        written = timer("write", write_splits, stage.path, rows, warnings)
        path, manifest, stats = write_manifest(stage, recipe, plan, merged, Funnel.of(plan, dedup, clean, selection),
                                               dedup, decontaminate, selection, rows, written, sink.files(),
                                               timer.total(), warnings)
    if clean_cache:
        shutil.rmtree(Path(out_dir) / CACHE, ignore_errors=True)
    return BuildResult(path=path, manifest=manifest, stats=stats, warnings=list(warnings))


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


#: What a build writes in its manifest folder (top level, and under report/): never carried over from the previous
#: build, so a split that is empty now, or the rejects of a filter no longer in the chain, do not come back.
BUILD_OWNED = frozenset({*SPLIT_FILES.values(), MANIFEST_FILE, "README.md"})
REPORT_OWNED = frozenset({"rejects", "measurements.jsonl.zst", "stats.json", "dedup_clusters.jsonl",
                          "trace.jsonl.zst", "report.html"})


def carry_over(old: Path, new: Path) -> list[Path]:
    """The files and folders of the manifest folder ``old`` (the previous build) that the new build (staged in
    ``new``) did not write and does not own (:data:`BUILD_OWNED`, :data:`REPORT_OWNED`): an export inside it, a
    user's notes. :meth:`StagedManifest.commit` moves them into the new folder once it is in place, so replacing
    the folder deletes nothing the build did not write, and a build that fails before then leaves them where they
    were. Returns their paths relative to the folder, sorted; ``[]`` when ``old`` does not exist."""
    if not old.is_dir():
        return []
    carried: list[Path] = []
    for entry in sorted(old.rglob("*")):
        rel = entry.relative_to(old)
        owned = rel.parts[0] in BUILD_OWNED or (rel.parts[0] == "report" and len(rel.parts) > 1
                                                and rel.parts[1] in REPORT_OWNED)
        if owned or (new / rel).exists() or any(parent in carried for parent in rel.parents):
            continue
        carried.append(rel)
    return carried
