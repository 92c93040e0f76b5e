"""The typed recipe: models built at load, every error of a recipe reported at once, the JSON Schema and
`lima-data recipe --show / --schema`."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from click.testing import CliRunner

from lima_data.cli import main
from lima_data.errors import RecipeError
from lima_data.recipe import SelectionSpec, SourceSpec, load_recipe, recipe_schema


def test_specs_are_typed_objects():
    recipe = load_recipe("lima")
    authored = recipe.sources["authored"]
    assert isinstance(authored, SourceSpec) and isinstance(authored.selection, SelectionSpec)
    assert authored.selection.method == "split"  # the source's default method, filled at load
    assert {g: authored.selection.split_of(g) for g in authored.selection.quotas} == {
        "train": "train", "dev": "dev", "test": "test"}
    reddit = recipe.sources["reddit"].selection
    assert reddit.split_of("askreddit") == "test" and reddit.split_of("writingprompts") == "train"
    se = recipe.sources["stackexchange"]
    assert se.selection.tau == 3.0 and se.chain[0] == "site_group"
    assert recipe.spec.dev_fill.from_pool is True
    assert recipe.spec.dedup.settings() == recipe.data["dedup"]  # what Dedup gets: the recipe's own settings
    assert recipe.spec.decontamination.ngram == 13 and recipe.spec.decontamination.settings() == recipe.data[
        "decontamination"]
    assert load_recipe("sample").spec.dedup.near.threshold == 0.8  # not in the file: Dedup's default
    # the typed recipe is read from the resolved data, which manifest.json records unchanged
    assert recipe.data["sources"]["stackexchange"]["selection"]["quotas"] == se.selection.quotas


def test_every_error_of_a_recipe_is_reported_at_once(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(
        'include = ["sample.toml"]\n'
        "colour = 1\n"
        "[sources.stackexchange.selection]\ntau = -1\n"
        "[sources.wikihow.filters.length]\nmin_chars = 10\nmaxx_chars = 5\n"
        "[sources.wikihow.selection]\nquotas = { wikihow = -2 }\n"
    )
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert str(info.value).splitlines() == [
        "4 problems in the recipe:",
        f"  {path}: colour: unknown key (known: ['decontamination', 'dedup', 'description', 'dev_fill', 'include', "
        "'name', 'seed', 'sources'])",
        f"  {path}: sources.stackexchange.selection.tau: must be a positive number",
        f"  {path}: sources.wikihow.filters.length: [filters.length]: unknown setting(s) ['maxx_chars']; "
        "known: ['band_max_chars', 'band_min_chars', 'max_chars', 'min_chars']",
        f"  {path}: sources.wikihow.selection.quotas.wikihow: must be a non-negative integer",
    ]


def test_one_error_reads_as_before(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('include = ["sample.toml"]\nseed = "zero"\n')
    with pytest.raises(RecipeError, match=r"^\S+r\.toml: seed: must be an integer$"):
        load_recipe(path)


@pytest.mark.parametrize("name", ["sample", "lima", "lima-release"])
def test_show_prints_the_resolved_recipe(tmp_path, name):
    """The TOML that --show prints loads back to the same recipe (same hash): includes and filters_from are
    applied, so the printed file stands alone."""
    recipe = load_recipe(name)
    result = CliRunner().invoke(main, ["recipe", "--show", name])
    assert result.exit_code == 0, result.output
    assert tomllib.loads(result.stdout) == recipe.data
    path = tmp_path / f"{name}-resolved.toml"
    path.write_text(result.stdout)
    assert load_recipe(path).sha256() == recipe.sha256()
    as_json = CliRunner().invoke(main, ["recipe", "--show", name, "--format", "json"])
    assert json.loads(as_json.stdout) == recipe.data


def test_schema_describes_the_recipe_files():
    result = CliRunner().invoke(main, ["recipe", "--schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema == recipe_schema()
    assert {"name", "seed", "include", "sources", "dedup", "decontamination", "dev_fill"} <= set(schema["properties"])
    source = schema["$defs"]["SourceSpec"]
    assert source["additionalProperties"] is False and "chain" in source["required"]
    assert set(schema["$defs"]["SelectionSpec"]["properties"]) >= {"method", "quotas", "tau", "splits", "band_shares"}
    jsonschema = pytest.importorskip("jsonschema")
    for name in ("sample", "lima", "lima-release"):
        jsonschema.validate(load_recipe(name).data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sources": {"wikihow": {"chain": [], "selection": {"quotas": {}, "tua": 3}}}}, schema)


def test_recipe_command_needs_one_action():
    result = CliRunner().invoke(main, ["recipe"])
    assert result.exit_code == 2 and "--show NAME or --schema" in result.output


def test_an_including_recipe_replaces_quotas_splits_and_band_shares_whole(tmp_path):
    """``splits = {}`` clears what an include set (merged key by key, it could never be cleared: review finding)."""
    path = tmp_path / "wp-only.toml"
    path.write_text('include = ["lima-release.toml"]\nname = "wp-only"\n'
                    '[sources.reddit.selection]\nquotas = { writingprompts = 150 }\nsplits = {}\nprompt_only = []\n'
                    '[sources.stackexchange.selection]\nband_shares = { short = 0.2 }\n')
    recipe = load_recipe(path)
    assert recipe.sources["reddit"].selection.quotas == {"writingprompts": 150}
    assert recipe.sources["reddit"].selection.split_of("writingprompts") == "train"
    assert recipe.data["sources"]["stackexchange"]["selection"]["band_shares"] == {"short": 0.2}


def test_a_problem_is_reported_in_the_included_file_that_holds_it(tmp_path):
    (tmp_path / "base.toml").write_text('include = ["lima.toml"]\n[sources.stackexchange.filters.lenght]\n'
                                        'min_chars = 1\n')
    (tmp_path / "top.toml").write_text('include = ["base.toml"]\nseed = 3\n')
    with pytest.raises(RecipeError) as caught:
        load_recipe(tmp_path / "top.toml")
    assert str(caught.value).startswith(f"{tmp_path / 'base.toml'} (included by {tmp_path / 'top.toml'}): "
                                        "sources.stackexchange.filters.lenght:")
    (tmp_path / "top.toml").write_text('include = ["lima.toml"]\nseed = "three"\n')
    with pytest.raises(RecipeError, match=f"^{re.escape(str(tmp_path / 'top.toml'))}: seed: must be an integer"):
        load_recipe(tmp_path / "top.toml")


def test_a_recipe_imports_only_the_sources_and_filters_it_uses():
    """Issue 15: start-up imports what the recipe uses. The Stack Exchange ablation disables wikiHow and Natural
    Instructions, so their readers (wikiHow's pulls in BeautifulSoup's page parsing) and their own filters stay
    unimported; a recipe naming them still loads them. Run in a fresh interpreter: this one has imported all."""
    import subprocess
    import sys

    code = ("import sys; from lima_data.recipe import load_recipe; load_recipe(sys.argv[1]); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('lima_data.'))))")

    def loaded(recipe: str) -> set[str]:
        out = subprocess.run([sys.executable, "-c", code, recipe], check=True, capture_output=True, text=True)
        return set(out.stdout.split())

    unused = {"lima_data.sources.wikihow", "lima_data.sources.natural_instructions", "lima_data.filters.task",
              "lima_data.filters.title_not_howto", "lima_data.filters.dialogue"}
    ablation = loaded("lima-ablation-filtered-se")
    assert {"lima_data.sources.stackexchange.source", "lima_data.filters.style"} <= ablation
    assert not unused & ablation
    assert unused - {"lima_data.filters.dialogue"} <= loaded("lima")


def test_source_modules_name_every_source_where_it_is_defined():
    """The lazy source registry's map is what importing every source module defines: a source added or moved
    without updating it fails here."""
    from lima_data.sources.base import SOURCE_MODULES, source_class, source_names

    assert sorted(SOURCE_MODULES) == source_names()
    for name, module in SOURCE_MODULES.items():
        assert source_class(name).__module__.startswith(f"lima_data.sources.{module}")
