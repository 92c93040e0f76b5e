"""Parallel and Ray executors give the same manifest; a killed build resumes with only what was left."""

from __future__ import annotations

import pytest

import lima_data.executor as executor_module
from lima_data.build import build
from lima_data.recipe import Recipe, load_recipe

SPLITS = ("train.jsonl", "dev.jsonl", "test.jsonl")


class Killed(Exception):
    """Stands for the process being killed mid-build."""


def files(path):
    return {name: (path / name).read_bytes() for name in SPLITS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    return build(load_recipe("sample"), out_dir=out, quiet=True)


def test_workers_give_identical_manifests(reference, tmp_path):
    parallel = build(load_recipe("sample"), out_dir=tmp_path, quiet=True, workers=2)
    assert files(parallel.path) == files(reference.path)
    assert parallel.manifest["funnel"] == reference.manifest["funnel"]
    assert parallel.manifest["readers"] == reference.manifest["readers"]


def test_ray_executor_matches_local(reference, tmp_path):
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        remote = build(load_recipe("sample"), out_dir=tmp_path, quiet=True, executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert files(remote.path) == files(reference.path)
    assert remote.manifest["funnel"] == reference.manifest["funnel"]


def test_killed_build_resumes_with_only_what_was_left(reference, tmp_path, monkeypatch):
    real = executor_module.run_task
    calls = []
    killed = []

    def dies_on_the_fourth(task, *args, **kwargs):
        calls.append(task.key)
        if len(calls) == 4 and not killed:
            killed.append(True)
            raise Killed  # the build dies while reading its fourth shard
        return real(task, *args, **kwargs)

    monkeypatch.setattr(executor_module, "run_task", dies_on_the_fourth)
    with pytest.raises(Killed):
        build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert not (tmp_path / "sample").exists()
    finished = set(calls[:3])
    calls.clear()
    resumed = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert finished.isdisjoint(calls) and len(calls) > 0  # only the shards that had not finished ran again
    assert files(resumed.path) == files(reference.path)
    assert resumed.manifest["funnel"] == reference.manifest["funnel"]

    calls.clear()
    again = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert calls == [] and files(again.path) == files(reference.path)  # everything cached


def test_changed_recipe_redoes_only_the_shards_it_affects(tmp_path, monkeypatch):
    build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    real = executor_module.run_task
    ran = []
    monkeypatch.setattr(executor_module, "run_task", lambda task, *a, **k: (ran.append(task.source), real(task, *a, **k))[1])
    recipe = load_recipe("sample")
    recipe.data["sources"]["wikihow"]["filters"]["length"]["min_chars"] = 5000
    recipe = Recipe(recipe.path, recipe.data)  # the typed recipe is built from the data once
    changed = build(recipe, out_dir=tmp_path, quiet=True)
    assert set(ran) == {"wikihow"} and len(ran) == 10  # the ten wikiHow pages, nothing else
    length = next(s for s in changed.manifest["funnel"]["wikihow"]["stages"] if s["filter"] == "length")
    assert length["dropped"].get("too_short", 0) > 0
    ran.clear()
    recipe.data["sources"]["stackexchange"]["selection"]["quotas"]["other"] = 5  # selection: no shard redone
    build(Recipe(recipe.path, recipe.data), out_dir=tmp_path, quiet=True)
    assert ran == []
