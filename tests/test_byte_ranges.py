"""One big Posts.xml split into byte-range shards at line starts, joined across ranges with polars: the same
candidates, counts and manifest as reading the file whole, with any number of workers, resumable."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest

import lima_data.executor as executor_module
from lima_data.build import build
from lima_data.recipe import Recipe, load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.base import discover
from lima_data.sources.stackexchange import StackExchangeSource, split_ranges

from .conftest import BEER_7Z, SAMPLES, read_source

SPLITS = ("train.jsonl", "dev.jsonl", "test.jsonl")
SMALL = 100_000  # bytes per range: the bundled and real Posts.xml files become 5-35 ranges


def read(path, workdir=None, **settings):
    """Candidates (by id) and the reader counts of all of ``path``'s shards added up."""
    source = StackExchangeSource({"min_answer_score": 10, **settings})
    source.workdir = workdir
    candidates, stats, shards = read_source(source, [path])
    total = ReaderStats(str(path))
    for shard_stats in stats.values():
        total.merge(shard_stats)
    return shards, {c.id: c.to_dict() for c in candidates}, total


def test_ranges_cover_the_file_at_line_starts(se_dir):
    path = se_dir / "matheducators" / "Posts.xml"
    data = path.read_bytes()
    ranges = split_ranges(path, SMALL)
    assert len(ranges) == -(-len(data) // SMALL) or len(ranges) == len(data) // SMALL
    assert ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert all(data[start - 1:start] == b"\n" for start, _ in ranges[1:])
    assert sum(data[s:e].count(b"<row ") for s, e in ranges) == data.count(b"<row ")
    assert split_ranges(path, len(data)) == [(0, len(data))]


@pytest.mark.parametrize("site", ["matheducators", "coffee", "genai", "bicycles_meta", "history_meta"])
def test_ranges_read_exactly_what_the_whole_file_reads(se_dir, site):
    path = se_dir / site / "Posts.xml"
    whole_shards, whole, whole_stats = read(path)
    range_shards, ranged, range_stats = read(path, shard_bytes=SMALL)
    assert len(whole_shards) == 1 and len(range_shards) >= 5
    assert ranged == whole  # every candidate, its top answer (often in another range), meta and licence
    assert range_stats.to_dict() == whole_stats.to_dict()


def test_blank_lines_at_range_starts_and_a_cache_path_with_glob_characters(tmp_path, se_dir):
    lines = (se_dir / "matheducators" / "Posts.xml").read_text(encoding="utf-8").splitlines(keepends=True)
    site = tmp_path / "matheducators"
    site.mkdir()
    (site / "Posts.xml").write_text("".join(line + "\n" for line in lines), encoding="utf-8")  # a blank after each
    _, whole, whole_stats = read(site)
    shards, ranged, range_stats = read(site, workdir=tmp_path / "cache [1]*?", shard_bytes=SMALL)
    data = (site / "Posts.xml").read_bytes()
    assert any(data[s.start:s.start + 1] == b"\n" for s in shards)  # some range starts on a blank line
    assert ranged == whole and range_stats.to_dict() == whole_stats.to_dict()
    assert list((tmp_path / "cache [1]*?" / "stackexchange-index").iterdir())


def test_bad_rows_in_ranges_keep_their_file_line_numbers(tmp_path, se_dir):
    lines = (se_dir / "matheducators" / "Posts.xml").read_text(encoding="utf-8").splitlines(keepends=True)
    broken = [5, len(lines) // 2, len(lines) - 40]
    for i in broken:
        lines[i] = re.sub(r' Body="[^"]*"', "", lines[i])
    site = tmp_path / "matheducators"
    site.mkdir()
    cut = "".join(lines)
    (site / "Posts.xml").write_text(cut[: len(cut) - 3000], encoding="utf-8")  # cut mid-row near the end
    _, whole, whole_stats = read(site)
    _, ranged, range_stats = read(site, shard_bytes=SMALL)
    assert whole_stats.malformed == 4 and whole_stats.truncated
    assert [e["line"] for e in whole_stats.errors[:3]] == [i + 1 for i in broken]
    assert range_stats.to_dict() == whole_stats.to_dict()
    assert ranged == whole


def test_a_big_7z_member_is_unpacked_once_and_read_in_ranges(tmp_path):
    source = StackExchangeSource({"shard_bytes": SMALL})
    warnings: list[str] = []
    found, _ = discover([BEER_7Z], [source], warnings.append)
    shards = found["stackexchange"]
    size = shards[0].size if len(shards) == 1 else shards[-1].end
    assert len(shards) == -(-size // SMALL) and all(s.member and s.is_range for s in shards)
    assert len(warnings) == 1 and "unpacked once into the build's cache" in warnings[0]
    assert f"needs {size / 2**30:.2f} GiB of free disk" in warnings[0]
    whole_shards, whole, whole_stats = read(BEER_7Z)
    assert len(whole_shards) == 1 and not whole_shards[0].is_range
    _, ranged, range_stats = read(BEER_7Z, workdir=tmp_path, shard_bytes=SMALL)
    assert ranged == whole and range_stats.to_dict() == whole_stats.to_dict()
    (unpacked,) = (tmp_path / "stackexchange-unpacked").iterdir()
    record = json.loads((unpacked / "unpacked.json").read_text())
    data = (unpacked / "member.bin").read_bytes()
    assert record["size"] == len(data) == size and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["member"] == "Posts.xml"


def split_recipe(tmp_path):
    """The bundled sample recipe with its Stack Exchange Posts.xml files read as 100 KB ranges."""
    recipe = load_recipe("sample")
    se = recipe.data["sources"]["stackexchange"]
    se.setdefault("reader", {})["shard_bytes"] = SMALL
    return Recipe(recipe.path, recipe.data)  # the typed recipe is built from the data once


def files(path):
    return {name: (path / name).read_bytes() for name in SPLITS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build(load_recipe("sample"), out_dir=tmp_path_factory.mktemp("whole"), quiet=True)


def test_split_build_equals_whole_build_with_any_workers(reference, tmp_path):
    single = build(split_recipe(tmp_path), out_dir=tmp_path / "one", quiet=True)
    assert files(single.path) == files(reference.path)
    assert single.manifest["funnel"] == reference.manifest["funnel"]
    assert single.manifest["readers"] == reference.manifest["readers"]
    assert single.manifest["inputs"] == reference.manifest["inputs"]  # one entry per file, not per range
    index = list((tmp_path / "one" / ".lima-cache" / "stackexchange-index").iterdir())
    assert len(index) == len(list(SAMPLES.glob("*/Posts.xml"))) + 1  # one join per split file and big .7z member
    parallel = build(split_recipe(tmp_path), out_dir=tmp_path / "two", quiet=True, workers=2)
    assert files(parallel.path) == files(reference.path)
    assert parallel.manifest["funnel"] == reference.manifest["funnel"]


def test_split_build_on_ray_matches(reference, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        remote = build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert files(remote.path) == files(reference.path)
    assert remote.manifest["funnel"] == reference.manifest["funnel"]


class Killed(Exception):
    """Stands for the process being killed mid-build."""


def test_killed_split_build_resumes_without_redoing_the_join(reference, tmp_path, monkeypatch):
    import lima_data.sources.stackexchange.source as se_module  # where prepare() finds join_index

    real_task, real_join = executor_module.run_task, se_module.join_index
    calls, joins, killed = [], [], []

    def dies_on_the_tenth(task, *args, **kwargs):
        calls.append(task.key)
        if len(calls) == 10 and not killed:
            killed.append(True)
            raise Killed  # the build dies while reading its tenth range
        return real_task(task, *args, **kwargs)

    monkeypatch.setattr(executor_module, "run_task", dies_on_the_tenth)
    monkeypatch.setattr(se_module, "join_index", lambda *a: (joins.append(a), real_join(*a))[1])
    with pytest.raises(Killed):
        build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True)
    joined = len(joins)
    assert joined >= 1
    finished = set(calls[:9])
    stale = tmp_path / ".lima-cache" / f".{calls[9]}.partial-99999"  # what a process killed mid-task leaves
    (stale / "rejects").mkdir(parents=True)
    calls.clear()
    resumed = build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True)
    assert not stale.exists()
    assert finished.isdisjoint(calls) and calls
    assert len(joins) == len(list(SAMPLES.glob("*/Posts.xml"))) + 1  # each file joined once over both runs
    assert files(resumed.path) == files(reference.path)
    shutil.rmtree(tmp_path / ".lima-cache" / "stackexchange-index")
    calls.clear()
    again = build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True)
    assert calls == [] and files(again.path) == files(reference.path)  # finished ranges need no join


def test_build_killed_while_unpacking_a_7z_resumes_and_clean_cache_removes_it(reference, tmp_path, monkeypatch):
    from lima_data.sources.stackexchange import sevenzip

    real_open = sevenzip.open_member
    opened: list[str] = []

    class DiesMidway:  # the process is killed after 1 MB of the member has been written
        def __init__(self, stream):
            self.stream, self.read_bytes = stream, 0

        def read(self, n=-1):
            if self.read_bytes > 1_000_000:
                raise Killed
            chunk = self.stream.read(min(n, 250_000))
            self.read_bytes += len(chunk)
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    def open_member(archive, member, limit):
        opened.append(member)
        stream = real_open(archive, member, limit)
        return DiesMidway(stream) if len(opened) == 1 else stream

    monkeypatch.setattr(sevenzip, "open_member", open_member)
    with pytest.raises(Killed):
        build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True)
    (unpacked,) = (tmp_path / ".lima-cache" / "stackexchange-unpacked").iterdir()
    (partial,) = unpacked.glob(".member.bin.partial-*")  # what the killed unpack left: no record, no member.bin
    assert partial.stat().st_size > 1_000_000 and not (unpacked / "unpacked.json").exists()
    resumed = build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True)
    assert files(resumed.path) == files(reference.path)
    assert not list(unpacked.glob(".member.bin.partial-*")) and (unpacked / "unpacked.json").is_file()
    unpacks = len(opened)
    for entry in (tmp_path / ".lima-cache").iterdir():  # task results gone, the unpacked member kept
        if entry.name not in ("stackexchange-unpacked", "stackexchange-index"):
            shutil.rmtree(entry)
    again = build(split_recipe(tmp_path), out_dir=tmp_path, quiet=True, clean_cache=True)
    assert files(again.path) == files(reference.path)
    assert len(opened) == unpacks  # the cache entry was reused, not unpacked again
    assert not (tmp_path / ".lima-cache").exists()
