"""`build` end to end on real dumps: funnel arithmetic, rejects, manifest contents, determinism, atomicity."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from lima_data.build import build
from lima_data.candidate import Candidate
from lima_data.errors import InputError, ShortfallError
from lima_data.filters import build_filter
from lima_data.manifest import sha256_file
from lima_data.recipe import load_recipe
from lima_data.report import iter_rejects
from lima_data.selection import tau_sample
from lima_data.text import strip_code

from .conftest import BEER_7Z


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("manifests")
    return build(load_recipe("sample"), out_dir=out, quiet=True)


@pytest.fixture(scope="module")
def full(tmp_path_factory, se_dir):
    out = tmp_path_factory.mktemp("manifests")
    return build(load_recipe("lima"), inputs=[se_dir], sources=["stackexchange"], out_dir=out, name="shared",
                 quiet=True)


def test_funnel_adds_up(full):
    funnel = full.manifest["funnel"]["stackexchange"]
    questions = sum(r["counts"]["questions"] for r in full.manifest["readers"])
    assert funnel["candidates"] == questions == 2999
    stages = funnel["stages"]
    assert stages[0]["in"] == questions
    for before, after in zip(stages, stages[1:]):
        assert after["in"] == before["kept"]
    for stage in stages:
        assert stage["in"] == stage["kept"] + sum(stage["dropped"].values())
    assert stages[-1]["kept"] == full.manifest["counts"]["train"]["total"]
    assert stages[0]["dropped"] == {"meta_site": 1167}  # three meta sites: 158 + 453 + 556 questions


def test_every_reject_is_written_with_its_reason(full):
    written = Counter((r["filter"], r["reason"]) for r in iter_rejects(full.path))
    expected = Counter()
    for stage in full.manifest["funnel"]["stackexchange"]["stages"]:
        for reason, n in stage["dropped"].items():
            expected[(stage["filter"], reason)] = n
    assert written == expected
    kept_ids = {json.loads(line)["id"] for line in (full.path / "train.jsonl").read_text().splitlines()}
    rejected_ids = {r["id"] for r in iter_rejects(full.path)}
    assert len(kept_ids) + len(rejected_ids) == 2999 and not kept_ids & rejected_ids


def test_manifest_rows_follow_the_rules(full):
    rows = [json.loads(line) for line in (full.path / "train.jsonl").read_text().splitlines()]
    assert rows and len(rows) == full.manifest["counts"]["train"]["total"]
    se_filters = load_recipe("lima").sources["stackexchange"].filters
    first_person = build_filter("first_person", se_filters["first_person"], 0)
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        prompt, response = (m["content"] for m in row["messages"])
        assert 1200 <= len(response) <= 4096
        assert row["meta"]["score"] >= 10
        assert first_person(Candidate("x", "stackexchange", "d", prompt, response)) == (0, None)
        assert "http://" not in strip_code(response) and "https://" not in strip_code(response)
        assert "<p>" not in response and "href" not in response
        assert "stack exchange" not in response.lower()
        assert len(prompt) <= 1000
        assert prompt == row["meta"]["title"] or row["meta"]["prompt_field"] in ("body", "title_body")
        assert row["meta"]["url"].startswith("https://") and row["meta"]["licence"].startswith("CC BY-SA")
        assert row["meta"]["author"] and row["domain"] in row["meta"]["url"]
        assert "meta." not in row["domain"]


def test_manifest_json_records_inputs_files_and_recipe(full, se_dir):
    m = full.manifest
    assert m["recipe"]["name"] == "lima" and len(m["recipe_sha256"]) == 64 and m["seed"] == 0
    by_site = {i["domain"]: i for i in m["inputs"]}
    coffee = by_site["coffee.stackexchange.com"]
    assert coffee["size"] == (se_dir / "coffee" / "Posts.xml").stat().st_size
    assert coffee["sha256"] == sha256_file(se_dir / "coffee" / "Posts.xml")
    for name, info in m["files"].items():
        assert sha256_file(full.path / name) == info["sha256"]
    assert json.loads((full.path / "manifest.json").read_text()) == m
    stats = json.loads((full.path / "report" / "stats.json").read_text())
    length = next(f for f in stats["funnel"]["stackexchange"]["filters"] if f["filter"] == "length")
    assert length["values"]["numeric"]["count"] == length["in"]
    assert (full.path / "report" / "measurements.jsonl.zst").is_file()


def test_shortfall_is_reported_plainly(full):
    assert any("quota 200, only" in w and "writing what there is" in w for w in full.warnings)
    assert {s["group"] for s in full.manifest["shortfalls"]} == {"stem", "other"}


def test_two_builds_give_identical_bytes(sample, tmp_path):
    again = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        assert (again.path / name).read_bytes() == (sample.path / name).read_bytes()
    assert again.manifest["recipe_sha256"] == sample.manifest["recipe_sha256"]
    assert again.manifest["inputs"] == sample.manifest["inputs"]
    other_seed = build(load_recipe("sample", seed=1), out_dir=tmp_path, name="seed1", quiet=True)
    assert other_seed.manifest["recipe_sha256"] != sample.manifest["recipe_sha256"]


def test_sample_fills_its_quotas(sample):
    assert sample.warnings == []
    counts = sample.manifest["counts"]
    assert counts["train"]["by_source"] == {"authored": 20, "stackexchange": 14, "wikihow": 6}
    assert counts["dev"]["by_source"] == {"authored": 5}
    assert counts["test"]["by_source"] == {"authored": 5, "reddit": 10}
    assert sample.manifest["inputs"][0]["path"] == "package:samples/stackexchange/beer.stackexchange.com.7z"


def test_every_stage_is_timed(sample):
    """build() is a chain of named stages, each timed in report/stats.json (seconds), in the order they ran."""
    timings = sample.stats["timings"]
    assert list(timings) == ["plan", "read+filter", "merge", "dedup", "assign_splits", "select_test",
                             "decontamination", "select_train", "dev_fill", "rows", "write", "total"]
    assert all(isinstance(t, float) and t >= 0 for t in timings.values())
    assert timings["total"] >= sum(t for name, t in timings.items() if name != "total") - 0.01


def test_strict_shortfall_fails_and_leaves_nothing(tmp_path, se_dir):
    with pytest.raises(ShortfallError, match="stackexchange stem 2/200"):
        build(load_recipe("lima"), inputs=[se_dir / "genai"], sources=["stackexchange"], out_dir=tmp_path,
              strict=True, quiet=True)
    assert [p.name for p in tmp_path.iterdir()] == [".lima-cache"]  # no manifest, no staging folder


def test_failed_build_keeps_the_previous_manifest(tmp_path, se_dir):
    good = build(load_recipe("lima"), inputs=[BEER_7Z], out_dir=tmp_path, name="m", quiet=True)
    before = (good.path / "train.jsonl").read_bytes()
    broken = tmp_path / "src" / "coffee"
    broken.mkdir(parents=True)
    (broken / "Posts.xml").write_text("this is not xml\n")
    with pytest.raises(InputError, match="not an XML file"):
        build(load_recipe("lima"), inputs=[BEER_7Z, broken], out_dir=tmp_path, name="m", quiet=True)
    assert (good.path / "train.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lima-cache", "m", "src"]  # no staging folder left


def test_unlisted_site_is_counted_as_other_with_a_warning(tmp_path, se_dir):
    site = tmp_path / "src" / "unheardof"
    site.mkdir(parents=True)
    (site / "Posts.xml").write_bytes((se_dir / "coffee" / "Posts.xml").read_bytes())
    result = build(load_recipe("lima"), inputs=[site], out_dir=tmp_path, quiet=True)
    assert "site unheardof.stackexchange.com is in no site list of the recipe: counted as other" in result.warnings
    assert result.manifest["counts"]["train"]["by_domain"] == {"unheardof.stackexchange.com": 3}


def test_malformed_rows_are_counted_and_reported(tmp_path, se_dir):
    site = tmp_path / "src" / "coffee"
    site.mkdir(parents=True)
    data = (se_dir / "coffee" / "Posts.xml").read_bytes()
    (site / "Posts.xml").write_bytes(data[: len(data) // 2])
    result = build(load_recipe("lima"), inputs=[site], out_dir=tmp_path, quiet=True)
    (reader,) = result.manifest["readers"]
    assert reader["malformed"] == 1 and reader["truncated"]
    assert any("1 malformed row(s) and the file is truncated" in w for w in result.warnings)


def test_tau_sampling_follows_n_to_the_one_over_tau():
    pools = {"big": [Candidate(f"b{i}", "s", "big", "p", "r") for i in range(1000)],
             "small": [Candidate(f"s{i}", "s", "small", "p", "r") for i in range(8)]}
    picks = Counter()
    for seed in range(300):
        for c in tau_sample(pools, 1, 3.0, random.Random(seed)):
            picks[c.domain] += 1
    # p(big) = 1000^(1/3) / (1000^(1/3) + 8^(1/3)) = 10 / 12
    assert abs(picks["big"] / 300 - 10 / 12) < 0.07
    taken = tau_sample(pools, 20, 3.0, random.Random(0))
    assert len(taken) == 20 and sum(c.domain == "small" for c in taken) <= 8
    assert [c.id for c in taken if c.domain == "small"] == [f"s{i}" for i in range(sum(c.domain == "small" for c in taken))]
    assert tau_sample(pools, 2000, 3.0, random.Random(0)).__len__() == 1008
