"""The HTML report, inspect, export formats, validate, and curation by hand, on a real build."""

from __future__ import annotations

import json
import shutil

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner

from lima_data.build import build
from lima_data.cli import main
from lima_data.export import export_manifest, to_gair, validate_manifest
from lima_data.recipe import load_recipe
from lima_data.report.html import build_report

SCRIPT = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build(load_recipe("sample"), out_dir=tmp_path_factory.mktemp("manifests"), quiet=True)


def rows(path, name):
    return [json.loads(line) for line in (path / name).read_text().splitlines()]


def test_html_report_funnel_matches_the_stats(built):
    report = build_report(built.path, reference=built.path)
    assert report == built.path / "report" / "report.html"
    soup = BeautifulSoup(report.read_text(), "html.parser")
    assert not soup.find_all("script") and not soup.find_all("link") and "http" not in "".join(
        str(tag.get("src", "")) for tag in soup.find_all(True))
    for source, funnel in built.stats["funnel"].items():
        table = soup.find("table", attrs={"data-source": source})
        for stage in funnel["filters"]:
            row = table.find("tr", attrs={"data-filter": stage["filter"]})
            assert int(row.find("td", class_="in").text) == stage["in"]
            assert int(row.find("td", class_="kept").text) == stage["kept"]
            assert int(row.find("td", class_="dropped").text) == sum(stage["dropped"].values())
    titles = [b.text for b in soup.select("div.card > b")]
    assert {"length", "answer_score", "first_person", "language · probability"} <= set(titles)
    length_card = next(b.parent for b in soup.select("div.card > b") if b.text == "length")
    assert "min_chars = 1,200" in length_card.text and "max_chars = 4,096" in length_card.text  # thresholds marked
    assert soup.find(id="drop-stackexchange-length-too_short") is not None
    assert soup.find(id="reference") is not None  # the comparison section


def test_report_escapes_candidate_text(tmp_path):
    path = tmp_path / "authored.jsonl"
    path.write_text(json.dumps({"id": "evil", "prompt": "Show me " + SCRIPT, "response": "Sure: " + SCRIPT}) + "\n"
                    + json.dumps({"id": "fine", "prompt": "Hello?", "response": "Hi."}) + "\n")
    drop = tmp_path / "drop.txt"
    drop.write_text("# dropped by hand\nauthored/evil\n")
    result = build(load_recipe("lima"), inputs=[path], sources=["authored"], out_dir=tmp_path, quiet=True,
                   drop=drop)
    html = build_report(result.path).read_text()
    soup = BeautifulSoup(html, "html.parser")
    assert not soup.find_all("script")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert SCRIPT in soup.get_text()


def test_keep_and_drop_lists_are_honoured_and_recorded(tmp_path, se_dir):
    base = build(load_recipe("lima"), inputs=[se_dir / "coffee"], sources=["stackexchange"], out_dir=tmp_path,
                 name="base", quiet=True)
    selected = [r["id"] for r in rows(base.path, "train.jsonl")]
    keep = tmp_path / "keep.txt"
    keep.write_text("stackexchange/coffee.stackexchange.com/1\nstackexchange/coffee.stackexchange.com/999999\n")
    drop = tmp_path / "drop.jsonl"
    drop.write_text(json.dumps({"id": selected[0]}) + "\n")
    result = build(load_recipe("lima"), inputs=[se_dir / "coffee"], sources=["stackexchange"], out_dir=tmp_path,
                   name="curated", quiet=True, keep=keep, drop=drop)
    ids = [r["id"] for r in rows(result.path, "train.jsonl")]
    assert "stackexchange/coffee.stackexchange.com/1" in ids and selected[0] not in ids
    kept = next(r for r in rows(result.path, "train.jsonl") if r["id"] == "stackexchange/coffee.stackexchange.com/1")
    assert kept["meta"]["kept_by_hand_over"]  # it would have been dropped (its answer is short)
    curation = result.manifest["curation"]
    assert curation["keep"]["missing"] == ["stackexchange/coffee.stackexchange.com/999999"]
    assert curation["drop"]["ids"] == [selected[0]] and curation["drop"]["missing"] == []
    manual = result.manifest["funnel"]["stackexchange"]["stages"][0]
    assert manual["filter"] == "manual" and manual["dropped"] == {"dropped_by_hand": 1}


def test_every_export_reads_back_row_by_row(built, tmp_path):
    import pyarrow.parquet as pq
    from datasets import load_from_disk

    originals = {split: rows(built.path, f"{split}.jsonl") for split in ("train", "dev", "test")}
    hf_name = {"train": "train", "dev": "validation", "test": "test"}
    out = export_manifest(built.path, "gair", tmp_path / "gair")
    assert sorted(p.name for p in out.iterdir()) == ["test.jsonl", "train.jsonl"]  # GAIR has no dev split
    for split in ("train", "test"):
        assert rows(out, f"{split}.jsonl") == [to_gair(r) for r in originals[split]]
    out = export_manifest(built.path, "messages", tmp_path / "messages")
    for split, expected in originals.items():
        assert rows(out, f"{split}.jsonl") == expected
    out = export_manifest(built.path, "parquet", tmp_path / "parquet")
    for split, expected in originals.items():
        table = pq.read_table(out / f"{hf_name[split]}.parquet").to_pylist()
        assert [t["id"] for t in table] == [r["id"] for r in expected]
        assert [t["messages"] for t in table] == [r["messages"] for r in expected]
        assert [t["meta"] for t in table] == [r["meta"] for r in expected]
    out = export_manifest(built.path, "hf", tmp_path / "hf")
    dataset = load_from_disk(str(out))
    for split, expected in originals.items():
        assert dataset[hf_name[split]]["id"] == [r["id"] for r in expected]
        assert dataset[hf_name[split]]["messages"] == [r["messages"] for r in expected]
        assert list(dataset[hf_name[split]]["meta"]) == [r["meta"] for r in expected]


def test_validate_catches_an_edited_jsonl(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built.path, copy)
    assert validate_manifest(copy) == []
    lines = (copy / "train.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["messages"][1]["content"] += " (edited)"
    lines[2] = json.dumps(row)
    lines.append(lines[0])
    (copy / "train.jsonl").write_text("\n".join(lines) + "\n")
    problems = validate_manifest(copy)
    assert "train.jsonl: sha256 differs from manifest.json (the file was changed after the build)" in problems
    assert any(p.startswith(f"train.jsonl:{len(lines)}: duplicate id") for p in problems)
    assert any("rows, manifest.json says" in p for p in problems)
    result = CliRunner().invoke(main, ["validate", str(copy)])
    assert result.exit_code == 1 and "sha256 differs" in result.stdout


def test_inspect_and_report_cli(built):
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", str(built.path), "--what", "rejects", "--reason", "too_short",
                                  "--limit", "2"])
    assert result.exit_code == 0, result.output
    funnel = json.loads((built.path / "report" / "stats.json").read_text())["funnel"]
    too_short = sum(f["dropped"].get("too_short", 0) for source in funnel.values() for f in source["filters"])
    assert too_short > 100  # raw_length and length, over Stack Exchange and wikiHow
    assert "length:too_short" in result.stdout and f"2 shown of {too_short} matching" in result.stdout
    result = runner.invoke(main, ["inspect", str(built.path), "--id", "stackexchange/beer.stackexchange.com/181"])
    assert result.exit_code == 0 and "Trappist beers are all abbey beers" in result.stdout
    result = runner.invoke(main, ["inspect", str(built.path), "--id", "nope"])
    assert result.exit_code == 1 and "no row or candidate with id 'nope'" in result.stderr
    result = runner.invoke(main, ["report", str(built.path), "--per-reason", "1"])
    assert result.exit_code == 0 and result.stdout.strip().endswith("report/report.html")
