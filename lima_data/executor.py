"""Running the per-shard work (read a shard, run its source's filter chain) in this process, in a local process
pool (``--workers N``), or on a Ray cluster (``--executor ray``), with results cached so a killed build resumes.

A task is one shard (one site's Posts.xml, one wikiHow file, ...) or, for a source that joins rows across files
(Reddit: submissions and comments), all of that source's shards. A task is a pure function of its shards and the
recipe's part for its source, so:

- its result is cached under ``<out>/.lima-cache/<key>/`` (kept candidates, chain stats, reader stats, rejects,
  measurements), keyed by the shards (path, size, modification time, member) and the source's recipe part (reader,
  chain, filter settings), the seed, strict mode, the keep / drop lists and the lima-data version and code; a build run
  again loads finished tasks from the cache and runs only the others, and a changed recipe re-runs exactly the
  tasks whose key changed (selection settings are not part of the key: selection runs after);
- results are merged in task order, whatever order they finish in, so the manifest is byte-identical to an
  uninterrupted, single-process build's.

A cache entry is written to a temporary folder and renamed when complete. ``rm -rf <out>/.lima-cache`` clears it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from . import __version__
from .candidate import Candidate
from .errors import EmptyBuildError, LimaDataError, ShortfallError, translated
from .files import finish_folder, partial_folder
from .filters import build_filter
from .filters.base import module_files
from .filters.manual import Manual
from .fingerprint import code_fingerprint, files_fingerprint
from .manifest import sha256_file
from .pipeline import Chain, FilterStats, RejectSink
from .recipe import Recipe, SourceSpec, display_path
from .sources import ReaderStats
from .sources.base import Shard, Source, discover, source_class

CACHE = ".lima-cache"
EXECUTORS = ("local", "ray")


@dataclass
class Task:
    """One unit of per-shard work; ``size`` is the bytes it reads (for progress)."""

    source: str
    shards: list[Shard]
    key: str
    size: int


@dataclass
class TaskResult:
    """What a task produced: the candidates its chain kept, the chain's stats, each shard's reader stats, and the
    folder holding its rejects and measurements."""

    kept: list[Candidate]
    candidates: int
    stats: list[FilterStats]  # the chain's, one per filter (Chain.stats)
    readers: list[tuple[Shard, ReaderStats]]
    matched: set[str] = field(default_factory=set)  # keep / drop ids met among this task's candidates
    folder: Path = field(default=Path())


def make_chain(source: str, spec: SourceSpec, seed: int, manual: Manual | None) -> list:
    """The filters of a source's chain, with the keep / drop filter first when there is one."""
    filters = [manual] if manual is not None else []
    return filters + [build_filter(n, spec.filters.get(n, {}), seed) for n in spec.chain]


def make_reader(source: str, spec: SourceSpec, seed: int, strict: bool, filters: list,
                workdir: Path | None = None) -> Source:
    """The source's reader with the recipe's reader settings, configured from its chain; ``workdir`` is where
    it may keep files shared between tasks (the build's cache)."""
    reader = source_class(source)(spec.reader, strict=strict, seed=seed)
    reader.configure(filters)
    reader.workdir = workdir
    reader.quotas = dict(spec.selection.quotas)
    return reader


def task_key(source: str, shards: list[Shard], spec: SourceSpec, seed: int, strict: bool,
             curation: dict[str, list[str]]) -> str:
    """sha256 of everything a task's result depends on (see the module docstring)."""
    files = []
    for shard in shards:
        st = shard.path.stat()
        files.append([str(shard.path.resolve()), shard.member, st.st_size, st.st_mtime_ns, shard.start, shard.end])
    part = spec.model_dump(exclude={"selection", "inputs"})
    if source_class(source).uses_quotas:  # the reader holds a number of rows that follows the quotas
        part["quotas"] = spec.selection.quotas
    text = json.dumps({"version": __version__, "code": code_fingerprint(),
                       "user_filters": files_fingerprint(module_files(spec.chain)), "source": source,
                       "files": files, "spec": part, "seed": seed, "strict": strict, "curation": curation},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plan_tasks(source: str, shards: list[Shard], spec: SourceSpec, seed: int, strict: bool,
               curation: dict[str, list[str]]) -> list[Task]:
    """One task per shard, or one for all shards of a source that joins across files (``joins_files``)."""
    groups = [shards] if getattr(source_class(source), "joins_files", False) else [[s] for s in shards]
    return [Task(source, group, task_key(source, group, spec, seed, strict, curation),
                 sum(s.size * s.passes for s in group)) for group in groups if group]


def run_task(task: Task, spec: SourceSpec, seed: int, strict: bool, curation: dict[str, list[str]],
             cache_root: str, progress: Callable[[int], None] | None = None) -> str:
    """Run one task and store its result in the cache; return the entry's folder. Safe to call in another
    process or on a Ray worker (everything it needs is in its arguments)."""
    final = Path(cache_root) / task.key
    if (final / "result.pkl").is_file():
        return str(final)
    tmp = partial_folder(final)
    manual = Manual(keep=curation.get("keep", []), drop=curation.get("drop", [])) if curation else None
    filters = make_chain(task.source, spec, seed, manual)
    reader = make_reader(task.source, spec, seed, strict, filters, Path(cache_root))
    chain = Chain(task.source, filters)
    stats: dict[Shard, ReaderStats] = {}

    def stats_for(shard: Shard) -> ReaderStats:
        if shard not in stats:
            stats[shard] = ReaderStats(str(shard.path) + (f"!{shard.member}" if shard.member else ""))
        return stats[shard]

    sink = RejectSink(tmp)
    try:
        batched = _Batched(progress) if progress is not None else None
        kept = list(chain.run(reader.read(task.shards, stats_for, lambda shard: batched), sink))
        if batched is not None:
            batched.flush()
    finally:
        sink.close()
    result = TaskResult(kept, chain.candidates, chain.stats, [(s, stats_for(s)) for s in task.shards],
                        manual.matched if manual is not None else set())
    with open(tmp / "result.pkl", "wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    finish_folder(tmp, final)  # (another worker may have finished the same task first)
    return str(final)


class _Batched:
    """A byte-count callback that passes counts on once they add up to 1 MiB: readers report every line, and a
    progress bar update per line would cost more than reading it."""

    def __init__(self, progress: Callable[[int], None], every: int = 1 << 20):
        self.progress, self.every, self.pending = progress, every, 0

    def __call__(self, n: int) -> None:
        self.pending += n
        if self.pending >= self.every:
            self.progress(self.pending)
            self.pending = 0

    def flush(self) -> None:
        if self.pending:
            self.progress(self.pending)
            self.pending = 0


def load_result(folder: str | Path) -> TaskResult:
    with open(Path(folder) / "result.pkl", "rb") as fh:
        result: TaskResult = pickle.load(fh)
    result.folder = Path(folder)
    return result


def _quiet_interrupt() -> None:
    """In a pool worker: Ctrl-C (SIGINT, sent to the whole process group) ends the worker at once and silently;
    the parent reports the interruption once."""
    import signal

    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(128 + signum))


def _pool_context():
    """The multiprocessing context of a local pool: a fork server where the platform has one, preloaded with this
    module and the filters and sources this process has imported (the recipe's: see
    :data:`~lima_data.filters.base.BUILTIN_MODULES`), so each worker starts as a fork of a process that imported
    them once instead of importing them itself (a spawned worker's ~0.4 s of CPU; on 2 cores, 4-6% of a 400 MB
    ``--workers 2`` build); else spawn. Never a plain fork of this process: it would copy locks held by polars'
    threads. The fork server is started with the first pool and kept for the process's life: workers see the
    environment it was started with, and import what a later recipe adds themselves."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__] + sorted(
        name for name in sys.modules if name.startswith((f"{__package__}.filters.", f"{__package__}.sources."))))
    return context


class Runner:
    """Runs calls of a module-level function in this process, a local process pool or on Ray, yielding results
    as they complete (the executor of a build; see :func:`execute`).

    Raises:
        LimaDataError: unknown executor, or Ray asked for but not installed.
    """

    def __init__(self, executor: str = "local", workers: int = 1, address: str | None = None):
        if executor not in EXECUTORS:
            raise LimaDataError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
        self.executor, self.workers, self.address = executor, workers, address
        self._pool = None
        if executor == "ray":
            try:
                import ray
            except ImportError:
                raise LimaDataError("the Ray executor needs Ray: pip install 'lima-data[ray]'") from None
            if not ray.is_initialized():
                ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                         log_to_driver=False)

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if self._pool is not None:  # on an error, calls not started yet are dropped, not run first
            self._pool.shutdown(cancel_futures=exc_type is not None)

    @property
    def parallel(self) -> bool:
        return self.executor == "ray" or self.workers > 1

    def completed(self, fn: Callable[..., Any], calls: list[tuple]) -> Iterator[tuple[int, Any]]:
        """``(index, result)`` of ``fn(*calls[index])`` for every call, in completion order."""
        if self.executor == "ray":
            import ray

            remote = ray.remote(translated)  # errors named in the worker, where the frames are
            pending = {remote.remote(fn, *args): i for i, args in enumerate(calls)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                yield pending.pop(done[0]), ray.get(done[0])
        elif self.workers > 1 and len(calls) > 1:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_pool_context(),
                                                 initializer=_quiet_interrupt)
            futures = {self._pool.submit(translated, fn, *args): i for i, args in enumerate(calls)}
            for future in as_completed(futures):
                yield futures[future], future.result()
        else:
            for i, args in enumerate(calls):
                yield i, fn(*args)

    def map(self, fn: Callable[..., Any], calls: list[tuple]) -> list[Any]:
        """``[fn(*args) for args in calls]``, computed by the executor, in call order (a :data:`RunMap`)."""
        results: list[Any] = [None] * len(calls)
        for i, result in self.completed(fn, calls):
            results[i] = result
        return results


def execute(tasks: list[Task], specs: dict[str, SourceSpec], seed: int, strict: bool,
            curation: dict[str, list[str]], cache_root: Path, *, workers: int = 1, executor: str = "local",
            address: str | None = None, on_progress: Callable[[Task, int], None] | None = None,
            on_done: Callable[[Task, bool], None] | None = None,
            on_stage: Callable[[str | None], None] | None = None) -> list[TaskResult]:
    """Run ``tasks`` (those not cached yet) and return every task's result, in task order. Before a source's
    tasks run, its :meth:`~lima_data.sources.base.Source.prepare` step does (on the same executor) what must
    see all of its shards, e.g. the Stack Exchange join across a big file's byte ranges.

    ``on_progress(task, bytes)`` reports reading progress (single process only); ``on_done(task, cached)`` is
    called as each task completes; ``on_stage(text)`` names a prepare step while it runs (``None`` after).

    Raises:
        LimaDataError: unknown executor, or Ray asked for but not installed.
    """
    cache_root.mkdir(parents=True, exist_ok=True)
    folders: dict[str, str] = {}
    todo = []
    for task in tasks:
        if (cache_root / task.key / "result.pkl").is_file():
            folders[task.key] = str(cache_root / task.key)
            if on_done:
                on_done(task, True)
        else:
            todo.append(task)
    with Runner(executor, workers, address) as runner:
        for source in dict.fromkeys(t.source for t in todo):
            if source_class(source).prepare is Source.prepare:
                continue  # nothing to prepare: do not build its chain here
            spec = specs[source]
            filters = make_chain(source, spec, seed, None)
            reader = make_reader(source, spec, seed, strict, filters, cache_root)
            shards = [s for t in todo if t.source == source for s in t.shards]
            if on_stage:
                on_stage(f"{source}: preparing {len(shards)} shard(s)")
            reader.prepare(shards, cache_root, runner.map)
            if on_stage:
                on_stage(None)
        calls = [(t, specs[t.source], seed, strict, curation, str(cache_root)) for t in todo]
        if runner.parallel:
            for i, folder in runner.completed(run_task, calls):
                folders[todo[i].key] = folder
                if on_done:
                    on_done(todo[i], False)
        else:
            for task, args in zip(todo, calls):
                progress = (lambda n, task=task: on_progress(task, n)) if on_progress else None
                folders[task.key] = run_task(*args, progress=progress)
                if on_done:
                    on_done(task, False)
    return [load_result(folders[t.key]) for t in tasks]


def merge_chain_stats(results: list[TaskResult]) -> tuple[int, list[FilterStats]]:
    """Add up the chain stats of one source's tasks (same chain, so the same filters in the same order)."""
    total = 0
    merged: list[FilterStats] | None = None
    for result in results:
        total += result.candidates
        if merged is None:
            merged = [FilterStats(s.name, s.settings) for s in result.stats]
        for into, stats in zip(merged, result.stats):
            into.merge(stats)
    return total, merged or []


def concat_files(results: list[TaskResult], relative: str, target: Path) -> None:
    """Concatenate a zstd JSON-lines file of every task (in task order) into ``target``: zstd frames concatenate
    into one valid stream."""
    parts = [r.folder / relative for r in results if (r.folder / relative).is_file()]
    if not parts:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "ab") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out)


# --- the build's first stages: plan, read+filter, merge (see lima_data.build) -------------------------------------


@dataclass
class BuildPlan:
    """What the plan stage found: per source (in build order) its reader, its chain (stats filled by
    :func:`merge_results`), its shards and its tasks; the files no source claimed; the sources with no input;
    and the keep / drop lists (``curation``: ``{kind: {"file", "sha256", "ids"}}``, ``ids``: ``{kind: [id]}``)."""

    sources: list[str]
    readers: dict[str, Source]
    chains: dict[str, Chain]
    shards: dict[str, list[Shard]]
    skipped: list[Path]
    curation: dict[str, dict[str, Any]]
    ids: dict[str, list[str]]
    missing: list[str] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)
    digests: "InputDigests | None" = None

    def dry_run(self) -> dict[str, Any]:
        """``{"dry_run": True, "shards": {source: [{"path", "kind", "domain", "size"}]}, "skipped": [path]}``."""
        return {"dry_run": True,
                "shards": {source: [{"path": display_path(s.path) + (f"!{s.member}" if s.member else ""),
                                     "kind": s.kind, "domain": s.domain or None, "size": s.size}
                                    for s in self.shards[source]] for source in self.sources},
                "skipped": [display_path(p) for p in self.skipped]}


def _is_empty(path: Path) -> bool:
    """The file has 0 bytes (an unreadable one is not called empty: its own error comes later)."""
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _first_few(paths: list[Path]) -> str:
    """The first five of ``paths`` for a warning, then ``, ...`` when there are more."""
    return ", ".join(display_path(p) for p in paths[:5]) + (", ..." if len(paths) > 5 else "")


def plan_build(recipe: Recipe, sources: list[str], inputs, curation: dict[str, dict[str, Any]], *, strict: bool,
               allow_empty: bool, dry_run: bool, warn: Callable[[str], None]) -> BuildPlan:
    """The plan stage: build each source's chain and reader, find its shards in ``inputs`` (or the recipe's
    inputs when empty) and cut them into tasks (:func:`plan_tasks`). With ``dry_run`` it stops after finding
    the shards (no warning about skipped files, no check, no task).

    Raises:
        InputError: an input is missing or unreadable.
        EmptyBuildError: no source has an input and not ``allow_empty``.
        ShortfallError: ``strict`` and a source has no input.
    """
    ids = {kind: entry["ids"] for kind, entry in curation.items()}
    manual = Manual(keep=ids.get("keep", []), drop=ids.get("drop", [])) if curation else None
    readers: dict[str, Source] = {}
    chains: dict[str, Chain] = {}
    for source in sources:
        filters = make_chain(source, recipe.sources[source], recipe.seed, manual)
        chains[source] = Chain(source, filters)
        readers[source] = make_reader(source, recipe.sources[source], recipe.seed, strict, filters)
    skipped: list[Path] = []
    if inputs:
        shards, skipped = discover(inputs, list(readers.values()), warn)
        if not dry_run:  # what no source claims, said by kind: empty, broken links, other files (issue 15)
            empty, broken, others = [], [], []
            for p in skipped:
                (broken if not p.exists() else empty if _is_empty(p) else others).append(p)
            if empty:
                warn(f"{len(empty)} empty file(s) under the inputs were skipped: {_first_few(empty)}")
            if broken:
                warn(f"{len(broken)} broken symbolic link(s) under the inputs were skipped: {_first_few(broken)}")
            if others:
                warn(f"{len(others)} file(s) under the inputs belong to no source being built and were skipped: "
                     f"{_first_few(others)} (all listed in manifest.json \"skipped\"; --dry-run shows which source "
                     f"claims which file)")
    else:
        shards = {}
        for source, reader in readers.items():
            found, _ = discover(recipe.source_inputs(source), [reader], warn)
            shards[source] = found[source]
    plan = BuildPlan(sources, readers, chains, shards, skipped, curation, ids)
    if dry_run:
        return plan
    plan.missing = [source for source in sources if not shards[source]]
    if len(plan.missing) == len(sources) and not allow_empty:
        raise EmptyBuildError(
            f"no input file was found for {', '.join(sources)}"
            + (f" ({len(skipped)} file(s) under the inputs are no source's dump, e.g. {display_path(skipped[0])}; "
               "--dry-run lists them)" if skipped else "") + "; pass --allow-empty to write an empty manifest anyway")
    for source in plan.missing:
        message = f"{source}: no input found for this source; its quotas stay empty"
        if strict:
            raise ShortfallError(f"strict: {message}")
        warn(message)
    se = "stackexchange"
    site_group = next((f for f in chains.get(se, Chain(se, [])).filters if f.name == "site_group"), None)
    for shard in shards.get(se, []):
        if site_group is not None and not site_group.listed(shard.domain):
            warn(f"site {shard.domain} is in no site list of the recipe: "
                 + ("dropped" if site_group.unlisted == "drop" else f"counted as {site_group.unlisted}"))
    plan.tasks = [t for source in sources
                  for t in plan_tasks(source, shards[source], recipe.sources[source], recipe.seed, strict, ids)]
    plan.digests = InputDigests([s.path for source in sources for s in shards[source]])
    return plan


class InputDigests:
    """The sha256 of each input file for manifest.json, computed in a background thread from the plan stage on,
    while the shards are read: hashlib releases the GIL on large blocks, so with a free core the hash (about 0.3 s
    for 400 MB, a minute for the 92 GB Stack Exchange dump) costs no wall time. :meth:`get` waits for it."""

    def __init__(self, paths: list[Path]):
        import threading

        self._paths = list(dict.fromkeys(paths))
        self._digests: dict[Path, str | OSError] = {}
        self._thread = threading.Thread(target=self._run, name="lima-data-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for path in self._paths:
            try:
                self._digests[path] = sha256_file(path)
            except OSError as exc:  # raised by get(), in the build's thread
                self._digests[path] = exc

    def get(self, path: Path) -> str:
        """The hex sha256 of ``path`` (hashed here when it was not among the plan's files).

        Raises:
            OSError: the file cannot be read.
        """
        if path not in self._paths:
            return sha256_file(path)
        self._thread.join()
        found = self._digests[path]
        if isinstance(found, OSError):
            raise found
        return found


def read_and_filter(plan: BuildPlan, recipe: Recipe, cache_root: Path, *, strict: bool, workers: int, executor: str,
                    address: str | None, progress) -> list[TaskResult]:
    """The read+filter stage: run the plan's tasks (:func:`execute`), showing bytes read on ``progress`` (a
    ``rich.progress.Progress``); returns each task's result in task order."""
    tasks = plan.tasks
    reading = f"reading {len(tasks)} task(s) with {workers} worker(s){' on Ray' if executor == 'ray' else ''}"
    bar = progress.add_task(reading, total=sum(t.size for t in tasks) or None)
    done_sizes: list[int] = []

    def on_done(task: Task, cached: bool) -> None:
        progress.update(bar, completed=sum(done_sizes) + task.size)
        done_sizes.append(task.size)

    return execute(tasks, recipe.sources, recipe.seed, strict, plan.ids, cache_root,
                   workers=workers, executor=executor, address=address,
                   on_progress=lambda task, n: progress.advance(bar, n), on_done=on_done,
                   on_stage=lambda text: progress.update(bar, description=text or reading))


@dataclass
class Merged:
    """What the merge stage returns: per source the kept candidates (in task order) and its task results;
    per input file its reader stats (byte ranges of one file merged into one) and its manifest entry
    (``{"source", "domain"?, "path", "size", "sha256"}``); and the keep / drop ids met among the candidates."""

    kept: dict[str, list[Candidate]]
    results: dict[str, list[TaskResult]]
    readers: dict[Shard, ReaderStats]
    inputs: list[dict[str, Any]]
    matched: set[str]


def merge_results(plan: BuildPlan, results: list[TaskResult], report: Path,
                  warn: Callable[[str], None]) -> Merged:
    """The merge stage: gather the task results per source (in task order, so the outcome does not depend on
    which task finished first), add up each source's chain stats into ``plan.chains``, concatenate the tasks'
    rejects, measurements and traces into the ``report`` folder, merge the reader stats per file and warn about
    skipped or malformed rows and truncated files."""

    by_source: dict[str, list[TaskResult]] = {s: [] for s in plan.sources}
    for task, result in zip(plan.tasks, results):
        by_source[task.source].append(result)
    for name in sorted({f.name for result in results for f in result.stats}):
        concat_files(results, f"rejects/{name}.jsonl.zst", report / "rejects" / f"{name}.jsonl.zst")
    concat_files(results, "measurements.jsonl.zst", report / "measurements.jsonl.zst")
    concat_files(results, "trace.jsonl.zst", report / "trace.jsonl.zst")
    merged = Merged({}, by_source, {}, [], set().union(*(r.matched for r in results)) if results else set())
    for source in plan.sources:
        merged.kept[source] = [c for result in by_source[source] for c in result.kept]
        if by_source[source]:
            plan.chains[source].candidates, plan.chains[source].stats = merge_chain_stats(by_source[source])
        files: dict[tuple, Shard] = {}  # byte ranges of one file are reported as the file
        for result in by_source[source]:
            for shard, stats in result.readers:
                stats.shard = display_path(shard.path) + (f"!{shard.member}" if shard.member else "")
                whole = files.setdefault((shard.path, shard.member), shard)
                if whole in merged.readers:
                    merged.readers[whole].merge(stats)
                else:
                    merged.readers[whole] = stats
        for shard in files.values():
            stats = merged.readers[shard]
            merged.inputs.append({
                "source": source,
                **({"domain": shard.domain} if shard.domain else {}),
                "path": display_path(shard.path),
                "size": shard.path.stat().st_size,
                "sha256": (plan.digests or InputDigests([])).get(shard.path),
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
            elif stats.errors:  # a problem of the whole file that did not stop the build, e.g. an empty one
                warn(f"{stats.shard}: " + "; ".join(e["error"] for e in stats.errors[:3]))
    return merged
