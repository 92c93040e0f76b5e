"""LIMA's section 5 ablations as bundled recipes (issue 18), each built on the bundled sample with small quotas."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lima_data.build import build
from lima_data.recipe import load_recipe

ABLATIONS = ("lima-ablation-filtered-se", "lima-ablation-unfiltered-se", "lima-ablation-wikihow")
QUANTITY = ("lima-quantity-2k", "lima-quantity-4k", "lima-quantity-8k", "lima-quantity-16k", "lima-quantity-32k")

#: The bundled sample as every ablation's input, with the held-fixed evaluation sources scaled down.
SAMPLE_INPUTS = """
[sources.stackexchange]
inputs = ["package:samples/stackexchange"]
[sources.wikihow]
inputs = ["package:samples/wikihow"]
[sources.reddit]
inputs = ["package:samples/reddit"]
[sources.reddit.selection]
quotas = { writingprompts = 0, askreddit = 5 }
[sources.authored]
inputs = ["package:samples/authored"]
[sources.authored.reader]
authored_labels = ["authors", "multi_turn", "stackexchange", "wikihow", "nlp", "writingprompts"]
[sources.authored.selection]
quotas = { train = 0, dev = 2, test = 3 }
"""


def _build(tmp_path, base: str, quotas: str, name: str | None = None) -> tuple[dict, dict[str, list[dict]]]:
    name = name or base
    path = tmp_path / f"test-{name}.toml"  # not the included name: a recipe is looked up beside its includer first
    path.write_text(f'name = "{name}"\ninclude = ["{base}.toml"]\n{SAMPLE_INPUTS}\n{quotas}\n')
    build(load_recipe(path), out_dir=tmp_path / "out", quiet=True)
    folder = tmp_path / "out" / name
    rows = {split: [json.loads(line) for line in (folder / f"{split}.jsonl").open()]
            for split in ("train", "dev", "test")}
    return json.loads((folder / "manifest.json").read_text()), rows


def test_full_size_quotas_are_the_papers():
    filtered = load_recipe("lima-ablation-filtered-se")
    assert sum(filtered.sources["stackexchange"].selection.quotas.values()) == 2000
    assert set(filtered.sources) == {"stackexchange", "reddit", "authored"}
    assert load_recipe("lima-ablation-wikihow").sources["wikihow"].selection.quotas == {"wikihow": 2000}
    sizes = [sum(load_recipe(n).sources["stackexchange"].selection.quotas.values()) for n in QUANTITY]
    assert sizes == [2000, 4000, 8000, 16000, 32000]
    lima = load_recipe("lima")
    for name in ABLATIONS + QUANTITY:
        recipe = load_recipe(name)
        # held fixed: the test prompts, the dev examples, dedup, decontamination, seed
        assert recipe.sources["reddit"].selection.quotas["askreddit"] == 70
        assert recipe.sources["authored"].selection.quotas == {"train": 0, "dev": 50, "test": 230}
        for key in ("dedup", "decontamination", "seed"):
            assert recipe.data[key] == lima.data[key]
        if "stackexchange" in recipe.sources and name != "lima-ablation-unfiltered-se":
            assert recipe.sources["stackexchange"].chain == lima.sources["stackexchange"].chain
            assert recipe.sources["stackexchange"].filters == lima.sources["stackexchange"].filters


def test_unfiltered_keeps_only_score_and_format_rules():
    recipe = load_recipe("lima-ablation-unfiltered-se")
    spec = recipe.sources["stackexchange"]
    assert spec.chain == ["site_group", "answer_score", "clean", "prompt_choice"]
    assert spec.filters["answer_score"]["min_score"] == 10
    assert set(spec.filters) <= set(spec.chain)


@pytest.mark.parametrize("name", ABLATIONS)
def test_ablation_builds_on_the_sample(tmp_path, name):
    quotas = ('[sources.wikihow.selection]\nquotas = { wikihow = 4 }' if name == "lima-ablation-wikihow" else
              '[sources.stackexchange.selection]\nquotas = { stem = 1, other = 10 }')
    manifest, rows = _build(tmp_path, name, quotas)
    train_sources = Counter(row["source"] for row in rows["train"])
    wanted = "wikihow" if name == "lima-ablation-wikihow" else "stackexchange"
    assert set(train_sources) == {wanted} and train_sources[wanted] >= 4
    assert Counter(row["source"] for row in rows["test"]) == {"reddit": 5, "authored": 3}
    assert len(rows["dev"]) == 2
    stages = [s["filter"] for s in manifest["funnel"][wanted]["stages"]]
    if name == "lima-ablation-unfiltered-se":
        assert "first_person" not in stages and "length" not in stages and "answer_score" in stages


def test_unfiltered_admits_what_the_filters_drop(tmp_path):
    quotas = '[sources.stackexchange.selection]\nquotas = { stem = 50, other = 200 }'
    filtered, rows_f = _build(tmp_path, "lima-ablation-filtered-se", quotas)
    unfiltered, rows_u = _build(tmp_path, "lima-ablation-unfiltered-se", quotas)
    assert len(rows_u["train"]) > 3 * len(rows_f["train"])
    lengths = [len(row["messages"][1]["content"]) for row in rows_u["train"]]
    assert min(lengths) < 1200  # the length rule is off
    assert all(row["meta"]["score"] >= 10 for row in rows_u["train"])  # the score rule is on
    assert not any("<p>" in row["messages"][1]["content"] for row in rows_u["train"])  # cleaned


def test_quantity_series_builds_and_nests(tmp_path):
    """Scaled down (1, 2, 4, 8, 16 Other examples): each size's picks contain the smaller size's (one seeded
    draw sequence), until the sample runs out."""
    picked = []
    for k, name in enumerate(QUANTITY):
        quotas = f"[sources.stackexchange.selection]\nquotas = {{ stem = 0, other = {2 ** k} }}"
        _, rows = _build(tmp_path, name, quotas)
        assert {row["source"] for row in rows["train"]} == {"stackexchange"}
        picked.append({row["id"] for row in rows["train"]})
    sizes = [len(p) for p in picked]
    assert sizes[:4] == [1, 2, 4, 8] and sizes[4] > 8
    assert all(small <= large for small, large in zip(picked, picked[1:]))
