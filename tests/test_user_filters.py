"""Filters written outside the package run like built-in ones (issue 12): named in a recipe's chain by
``module:Class`` or through the ``lima_data.filters`` entry point group."""

from __future__ import annotations

import importlib.metadata

import pytest

from lima_data.build import build
from lima_data.errors import RecipeError
from lima_data.filters.base import build_filter, filter_class
from lima_data.recipe import load_recipe
from lima_data.report import iter_rejects

from .user_filters import QuestionMarkPrompt

ENTRY = "tests.user_filters:QuestionMarkPrompt"


def _recipe(tmp_path, chain_entry: str, settings: str = ""):
    path = tmp_path / "mine.toml"
    chain = ", ".join(f'"{name}"' for name in load_recipe("sample").sources["wikihow"].chain + [chain_entry])
    path.write_text(f"""
name = "mine"
include = ["sample.toml"]

[sources.wikihow]
chain = [{chain}]
{settings}
""")
    return load_recipe(path)


def test_user_filter_runs_in_the_chain_with_stats_and_rejects(tmp_path):
    result = build(_recipe(tmp_path, ENTRY), sources=["wikihow"], out_dir=tmp_path / "out", quiet=True)
    stages = {s["filter"]: s for s in result.manifest["funnel"]["wikihow"]["stages"]}
    mine = stages["question_mark_prompt"]
    assert mine["in"] == stages["pii"]["kept"] > 0
    assert mine["in"] == mine["kept"]  # every wikiHow prompt is "How to ...?"
    train = result.manifest["counts"]["train"]["total"]
    assert train > 0

    # Its settings table is keyed by the chain entry as written, and reaches the filter.
    recipe = _recipe(tmp_path, ENTRY, f'[sources.wikihow.filters."{ENTRY}"]\nrequired = false\n')
    settings = recipe.sources["wikihow"].filters[ENTRY]
    assert build_filter(ENTRY, settings, 0).required is False


def test_user_filter_rejects_are_written(tmp_path):
    path = tmp_path / "strict.py"
    path.write_text(
        "from lima_data.filters import Filter\n"
        "class Short(Filter):\n"
        "    name = 'short_title'\n"
        "    reasons = ('long_title',)\n"
        "    defaults = {'max_chars': 20}\n"
        "    def measure(self, c):\n"
        "        return len(c.prompt)\n"
        "    def decide(self, v):\n"
        "        return 'long_title' if v > self.max_chars else None\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        result = build(_recipe(tmp_path, "strict:Short"), sources=["wikihow"], out_dir=tmp_path / "out",
                       quiet=True)
    finally:
        sys.path.remove(str(tmp_path))
    stage = next(s for s in result.manifest["funnel"]["wikihow"]["stages"] if s["filter"] == "short_title")
    assert stage["dropped"].get("long_title", 0) > 0
    rejects = [r for r in iter_rejects(result.path) if r["filter"] == "short_title"]
    assert len(rejects) == stage["dropped"]["long_title"]
    assert all(len(r["prompt"]) > 20 for r in rejects)


def test_entry_point_group(monkeypatch):
    ep = importlib.metadata.EntryPoint(name="qmark", value=ENTRY, group="lima_data.filters")
    real = importlib.metadata.entry_points

    def fake(**kwargs):
        if kwargs.get("group") == "lima_data.filters":
            return [e for e in [ep] if e.name == kwargs.get("name", e.name)]
        return real(**kwargs)

    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    assert filter_class("qmark") is QuestionMarkPrompt
    assert build_filter("qmark", {"required": False}, 0).required is False


@pytest.mark.parametrize("entry, message", [
    ("tests.user_filters:NotAFilter", "is not a Filter subclass"),
    ("no_such_module_xyz:Thing", "cannot import module"),
    ("no_such_filter", "unknown filter"),
])
def test_bad_user_filters_are_recipe_errors(tmp_path, entry, message):
    with pytest.raises(RecipeError, match=message):
        _recipe(tmp_path, entry)


def test_user_filter_may_not_take_a_builtin_name(tmp_path):
    path = tmp_path / "clash.py"
    path.write_text("from lima_data.filters import Filter\n"
                    "class Length(Filter):\n    name = 'length'\n")
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(RecipeError, match="is a built-in filter's"):
            filter_class("clash:Length")
        from lima_data.filters.base import REGISTRY
        assert REGISTRY["length"].__module__ == "lima_data.filters.length"
    finally:
        sys.path.remove(str(tmp_path))
