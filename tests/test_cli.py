"""The CLI end to end through click's test runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lima_data.cli import main


def test_build_and_report_the_bundled_sample(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["build", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "sample" / "manifest.json").read_text())
    assert manifest["counts"]["train"]["total"] == 40
    assert result.stdout.strip() == str(tmp_path / "sample")

    result = runner.invoke(main, ["report", str(tmp_path / "sample"), "--per-reason", "1"])
    assert result.exit_code == 0, result.output
    for word in ("answer_score", "answer_score_too_low", "first_person", "too_short", "selection", "over_quota"):
        assert word in result.stdout
    assert "1832" in result.stdout  # candidates into the first filter


def test_build_prints_the_funnel_table(tmp_path, se_dir):
    result = CliRunner().invoke(
        main, ["build", "--sources", "stackexchange", "--input", str(se_dir / "coffee"), "--input",
               str(se_dir / "genai"), "--out", str(tmp_path), "--name", "two"])
    assert result.exit_code == 0, result.output
    assert "funnel of manifest 'two'" in result.stderr
    assert "site_reference" in result.stderr and "quota 200" in result.stderr


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    site = tmp_path / "coffee"
    site.mkdir()
    (site / "Posts.xml").write_text("id,title\n1,hello\n")
    result = CliRunner().invoke(main, ["build", "--input", str(site), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"error: {site / 'Posts.xml'}:1: not an XML file" in result.stderr


def test_unknown_source_and_recipe(tmp_path):
    result = CliRunner().invoke(main, ["build", "--sources", "myspace", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown source 'myspace'" in result.output
    result = CliRunner().invoke(main, ["build", "--recipe", "nope", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "recipe 'nope' not found" in result.stderr


def test_report_on_a_folder_that_is_not_a_manifest(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "not a manifest folder" in result.stderr
