"""Manifests and exports as Hugging Face datasets, polars and a shell user take them: the dataset card, no empty
split files, one meta schema, dev filled from the pool, exports outside the manifest, GAIR's labels, the Hub upload
plan, and the CLI grammar (issue 13)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from lima_data.build import build
from lima_data.card import HF_SPLIT_NAMES
from lima_data.cli import main
from lima_data.export import GAIR_LABELS, default_export_dir, export_manifest, push_to_hub, validate_manifest
from lima_data.recipe import load_recipe


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return build(load_recipe("sample"), out_dir=tmp_path_factory.mktemp("manifests"), quiet=True)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_manifest_folder_loads_with_datasets_through_its_card(sample):
    import datasets

    card = (sample.path / "README.md").read_text()
    assert card.startswith("---\n") and "split: validation\n    path: dev.jsonl" in card
    assert sample.manifest["recipe_sha256"] in card
    ds = datasets.load_dataset(str(sample.path))
    counts = sample.manifest["counts"]
    assert {name: ds[name].num_rows for name in ds} == {HF_SPLIT_NAMES[s]: counts[s]["total"] for s in counts}
    meta = ds["train"].features["meta"]
    assert set(meta) == set(sample.manifest["meta_schema"]) and {"tags", "categories", "origin"} <= set(meta)
    # every row has every meta key, null where its source has none; the domain is null, never "(none)"
    train = jsonl(sample.path / "train.jsonl")
    assert all(list(r["meta"]) == list(sample.manifest["meta_schema"]) for r in train)
    wikihow = next(r for r in train if r["source"] == "wikihow")
    assert wikihow["meta"]["tags"] is None and isinstance(wikihow["meta"]["categories"], list)
    assert "(none)" not in (sample.path / "train.jsonl").read_text()
    # explicit files with the card's features (several splits), or one file alone
    files = {HF_SPLIT_NAMES[s]: str(sample.path / f"{s}.jsonl") for s in counts}
    explicit = datasets.load_dataset("json", data_files=files, features=ds["train"].features)
    assert explicit["validation"]["id"] == ds["validation"]["id"]
    assert datasets.load_dataset("json", data_files=files["test"], split="train").num_rows == counts["test"]["total"]


def test_every_export_loads_as_a_dataset_and_in_polars(sample, tmp_path):
    import datasets
    import polars as pl

    parquet = export_manifest(sample.path, "parquet", tmp_path / "parquet")
    ds = datasets.load_dataset(str(parquet))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].features["meta"]["tags"] == datasets.load_dataset(str(sample.path))["train"].features[
        "meta"]["tags"]
    frame = pl.read_parquet(parquet / "train.parquet")
    assert frame.height == sample.manifest["counts"]["train"]["total"]
    assert frame.schema["meta"].to_python() is dict or "tags" in [f.name for f in frame.schema["meta"].fields]
    hf = datasets.load_from_disk(str(export_manifest(sample.path, "hf", tmp_path / "hf", quiet=True)))
    assert set(hf) == {"train", "validation", "test"}
    messages = datasets.load_dataset(str(export_manifest(sample.path, "messages", tmp_path / "messages")))
    assert messages["validation"]["id"] == hf["validation"]["id"]


def test_default_export_goes_beside_the_manifests_folder_never_inside(sample, tmp_path):
    manifests = tmp_path / "manifests"
    shutil.copytree(sample.path, manifests / "sample")
    out = export_manifest(manifests / "sample", "gair")
    assert out == default_export_dir(manifests / "sample", "gair") == (tmp_path / "exports" / "sample" / "gair"
                                                                       ).resolve()
    assert not (manifests / "sample" / "export").exists()
    with pytest.raises(Exception, match="inside the manifest folder"):
        export_manifest(manifests / "sample", "gair", manifests / "sample" / "gair")


def test_empty_splits_are_not_written_and_the_manifest_still_loads(tmp_path, se_dir):
    import datasets

    result = build(load_recipe("lima"), inputs=[se_dir / "coffee"], sources=["stackexchange"], out_dir=tmp_path,
                   quiet=True)
    assert result.manifest["counts"]["test"]["total"] == 0 and not (result.path / "test.jsonl").exists()
    assert any(w.startswith("test: no rows; test.jsonl is not written") for w in result.warnings)
    assert "test.jsonl" not in result.manifest["files"] and validate_manifest(result.path) == []
    assert "split: test" not in (result.path / "README.md").read_text()
    assert list(datasets.load_dataset(str(result.path))) == ["train"]
    out = export_manifest(result.path, "parquet", tmp_path / "parquet")
    assert sorted(p.name for p in out.glob("*.parquet")) == ["train.parquet"]


def test_dev_is_filled_from_the_curated_pool_never_from_train(tmp_path):
    result = build(load_recipe("sample"), sources=["stackexchange", "wikihow"], out_dir=tmp_path, quiet=True)
    fill = result.manifest["dev_fill"]
    assert fill["wanted"] == 5 and fill["authored"] == 0 and fill["filled"] == 5  # sample.toml: authored dev = 5
    dev, train = jsonl(result.path / "dev.jsonl"), jsonl(result.path / "train.jsonl")
    assert len(dev) == 5 and all(r["meta"]["dev_from_pool"] is True for r in dev)
    assert not {r["id"] for r in dev} & {r["id"] for r in train}
    assert all(r["messages"][-1]["role"] == "assistant" for r in dev)
    assert any("filled 5 from the curated pool" in w for w in result.warnings)
    # the option off: no dev rows, no dev file
    recipe = tmp_path / "nofill.toml"
    recipe.write_text('include = ["sample.toml"]\nname = "nofill"\n[dev_fill]\nfrom_pool = false\n')
    off = build(load_recipe(recipe), sources=["stackexchange", "wikihow"], out_dir=tmp_path, quiet=True)
    assert off.manifest["dev_fill"] == {} and not (off.path / "dev.jsonl").exists()
    assert [r["id"] for r in jsonl(off.path / "train.jsonl")] == [r["id"] for r in train]


def test_gair_export_reproduces_the_release_labels(tmp_path, shared):
    slice_ = shared / "lima" / "lima_train_slice.jsonl"
    # Every label read as authored (the lima recipe keeps only "authors" / "multi_turn" rows of a release file).
    recipe = tmp_path / "all-labels.toml"
    recipe.write_text('include = ["lima.toml"]\n[sources.authored.reader]\nauthored_labels = '
                      + json.dumps(sorted(GAIR_LABELS)) + "\n")
    result = build(load_recipe(recipe), inputs=[slice_], sources=["authored"], out_dir=tmp_path, quiet=True)
    out = export_manifest(result.path, "gair", tmp_path / "gair")
    original = jsonl(slice_)
    exported = jsonl(out / "train.jsonl")
    assert Counter(r["source"] for r in exported) == Counter(r["source"] for r in original)
    assert set(r["source"] for r in original) == set(GAIR_LABELS)
    key = lambda r: (json.dumps(r["conversations"]), r["source"])  # noqa: E731
    assert sorted(map(key, exported)) == sorted(map(key, original))


def test_gair_labels_of_built_sources(sample, tmp_path):
    out = export_manifest(sample.path, "gair", tmp_path / "gair")
    train, test = jsonl(out / "train.jsonl"), jsonl(out / "test.jsonl")
    by_id = {r["id"]: r for r in jsonl(sample.path / "train.jsonl")}
    labels = Counter(row["source"] for row in train)
    se_rows = sum(1 for r in by_id.values() if r["source"] == "stackexchange")
    wikihow_rows = sum(1 for r in by_id.values() if r["source"] == "wikihow")
    assert labels["stackexchange"] >= se_rows and labels["wikihow"] >= wikihow_rows  # + authored rows of LIMA's
    assert "authored" not in labels and "askreddit" in Counter(r["source"] for r in test)


def test_rebuild_keeps_what_it_did_not_write(tmp_path):
    first = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    (first.path / "export" / "gair").mkdir(parents=True)
    (first.path / "export" / "gair" / "train.jsonl").write_text("{}\n")
    (first.path / "report" / "notes.txt").write_text("mine\n")
    again = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert (again.path / "export" / "gair" / "train.jsonl").read_text() == "{}\n"
    assert (again.path / "report" / "notes.txt").read_text() == "mine\n"
    warning = next(w for w in again.warnings if w.startswith("kept 2 file(s) of the previous sample"))
    assert "export/" in warning and "report/notes.txt" in warning
    assert (again.path / "train.jsonl").read_bytes() == (tmp_path / "sample" / "train.jsonl").read_bytes()


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records the calls and the files uploaded (no network)."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, folder_path, repo_id, **kwargs):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))


def test_push_to_hub_uploads_the_parquet_splits_and_card(sample):
    hub = FakeHub()
    plan = push_to_hub(sample.path, "me/lima-sample", private=True, api=hub)
    assert plan["files"] == ["README.md", "test.parquet", "train.parquet", "validation.parquet"]
    assert hub.calls[0] == ("create_repo", "me/lima-sample", {"repo_type": "dataset", "private": True,
                                                                "exist_ok": True})
    name, repo, kwargs = hub.calls[1]
    assert name == "upload_folder" and repo == "me/lima-sample" and kwargs["repo_type"] == "dataset"
    assert kwargs["files"] == plan["files"] and sample.manifest["recipe_sha256"][:12] in kwargs["commit_message"]


def test_cli_grammar(sample, tmp_path, se_dir):
    runner = CliRunner()
    # several inputs after one --input, several sources after one --sources, -o
    result = runner.invoke(main, ["build", "--dry-run", "--json", "--input", str(se_dir / "coffee"),
                                  str(se_dir / "genai"), str(se_dir / "history_meta"), "--sources",
                                  "stackexchange", "wikihow"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert [Path(s["path"]).parent.name for s in plan["shards"]["stackexchange"]] == ["coffee", "genai",
                                                                                     "history_meta"]
    assert any(p.endswith("posts.dtd") for p in plan["skipped"]) and plan["shards"]["wikihow"] == []
    result = runner.invoke(main, ["build", "-q", "--input", str(se_dir / "coffee"), "--sources", "stackexchange",
                                  "-o", str(tmp_path / "m"), "--name", "coffee"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "m" / "coffee") and "warning" not in result.output
    skipped = json.loads((tmp_path / "m" / "coffee" / "manifest.json").read_text())["skipped"]
    assert skipped == [str(se_dir / "coffee" / "SOURCE.txt")]  # listed, not only counted
    # the old spellings still work but are not shown
    result = runner.invoke(main, ["export", str(sample.path), "--format", "gair", "--out", str(tmp_path / "g")])
    assert result.exit_code == 0 and (tmp_path / "g" / "train.jsonl").is_file()
    assert "--out " not in runner.invoke(main, ["export", "--help"]).output
    assert "-o, --output" in runner.invoke(main, ["export", "--help"]).output
    for command in ("build", "report", "inspect", "export", "validate", "train", "generate", "convert", "judge"):
        text = runner.invoke(main, [command, "--help"]).output
        assert "-q, --quiet" in text and "-v, --verbose" in text, command
    # an empty build is an error; unknown --reason / --source list the known ones
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["build", "--input", str(tmp_path / "empty"), "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "no input file was found" in result.output and "--allow-empty" in result.output
    result = runner.invoke(main, ["inspect", str(sample.path), "--what", "rejects", "--reason", "nosuch"])
    assert result.exit_code == 2 and "too_short" in result.output
    result = runner.invoke(main, ["inspect", str(sample.path), "--source", "nosuch"])
    assert result.exit_code == 2 and "stackexchange" in result.output
    # inspect --json: JSON lines on stdout
    result = runner.invoke(main, ["inspect", str(sample.path), "--json", "--split", "test", "--limit", "3"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and all(r["split"] == "test" for r in rows)
    # a bad checkpoint folder is a one-line error
    result = runner.invoke(main, ["generate", str(sample.path), "--checkpoint", str(sample.path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "no config.json" in result.output


def test_minhash_matches_datasketch_on_real_responses(shared):
    datasketch = pytest.importorskip("datasketch")
    from datasketch.lsh import _optimal_param

    from lima_data.filters.dedup import shingles
    from lima_data.filters.minhash import LSHIndex, jaccard, optimal_bands, signature

    for threshold, num_perm in ((0.8, 128), (0.5, 64), (0.9, 256), (0.3, 128)):
        assert optimal_bands(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    texts = [turn for row in jsonl(shared / "lima" / "lima_train_slice.jsonl") for turn in row["conversations"]]
    sets = [sorted(shingles(t, 5)) or [b""] for t in texts]
    theirs = datasketch.MinHash.bulk(sets, num_perm=128, seed=1)
    ours = [signature(s, 128, 1) for s in sets]
    assert all((m.hashvalues == o).all() for m, o in zip(theirs, ours))
    assert jaccard(ours[0], ours[1]) == theirs[0].jaccard(theirs[1])
    lsh, index = datasketch.MinHashLSH(threshold=0.5, num_perm=128), LSHIndex(0.5, 128)
    edited = [t[: len(t) // 2] + " an edit " + t[len(t) // 2:] for t in texts[:20]]
    for i, (m, o) in enumerate(zip(theirs, ours)):
        lsh.insert(i, m)
        index.insert(i, o)
    for text in edited:
        s = sorted(shingles(text, 5)) or [b""]
        assert set(lsh.query(datasketch.MinHash.bulk([s], num_perm=128, seed=1)[0])) == index.query(
            signature(s, 128, 1))


def test_rebuild_never_brings_back_what_the_build_owns_and_loses_nothing_on_failure(tmp_path, monkeypatch):
    """A split that is empty now does not come back from the previous build, nor do the rejects of a filter no
    longer run; and a build failing at its last step leaves the user's files where they were."""
    first = build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert (first.path / "dev.jsonl").is_file()
    (first.path / "NOTES.md").write_text("mine\n")
    (first.path / "report" / "rejects" / "gone_filter.jsonl.zst").write_bytes(b"old")
    recipe = tmp_path / "no-dev.toml"
    recipe.write_text('name = "sample"\ninclude = ["sample.toml"]\n[dev_fill]\nfrom_pool = false\n'
                      '[sources.authored.selection]\nquotas = { train = 20, dev = 0, test = 5 }\n')
    again = build(load_recipe(recipe), out_dir=tmp_path, quiet=True)
    assert not (again.path / "dev.jsonl").exists() and "dev.jsonl" not in again.manifest["files"]
    assert not (again.path / "report" / "rejects" / "gone_filter.jsonl.zst").exists()
    assert (again.path / "NOTES.md").read_text() == "mine\n"

    from lima_data import manifest as manifest_module

    def fail(self, carry=()):
        raise KeyboardInterrupt

    monkeypatch.setattr(manifest_module.StagedManifest, "commit", fail)
    with pytest.raises(KeyboardInterrupt):
        build(load_recipe("sample"), out_dir=tmp_path, quiet=True)
    assert (tmp_path / "sample" / "NOTES.md").read_text() == "mine\n"  # nothing lost
    assert not list(tmp_path.glob(".sample.partial-*"))


def test_a_dev_quota_filled_from_the_pool_is_not_reported_short(tmp_path):
    recipe = tmp_path / "short-dev.toml"
    recipe.write_text('include = ["sample.toml"]\nname = "shortdev"\n'
                      '[sources.authored.selection]\nquotas = { train = 25, dev = 10, test = 0 }\n')
    result = build(load_recipe(recipe), sources=["stackexchange", "wikihow", "authored"], out_dir=tmp_path,
                   quiet=True)
    fill = result.manifest["dev_fill"]
    assert fill["authored"] == 5 and fill["filled"] == 5 and len(jsonl(result.path / "dev.jsonl")) == 10
    assert not [s for s in result.manifest["shortfalls"] if s["split"] == "dev"]
    (dev_group,) = [g for g in result.manifest["selection"]["authored"] if g["group"] == "dev"]
    assert dev_group["selected"] == 5 and dev_group["filled_from_pool"] == 5 and dev_group["shortfall"] == 0
    assert not any("authored dev: quota" in w for w in result.warnings)
