"""Dedup keeps exactly one of several candidates that share an id (issue 11, item 6)."""

from __future__ import annotations

import json
import shutil
from collections import Counter

from lima_data.build import build
from lima_data.candidate import Candidate
from lima_data.filters.dedup import Dedup
from lima_data.recipe import load_recipe
from lima_data.report import iter_rejects


def test_one_id_from_two_inputs_keeps_exactly_one(tmp_path, shared):
    """The same real wikiHow page and the same real Reddit posts in two folders: one of each id is kept (it was
    none: both copies were dropped although dedup_clusters.jsonl named one as kept)."""
    page = shared / "wikihow" / "html_pages_2020" / "How_to_Grill_Flank_Steak__15_Steps__with_Pictures__-_wikiHow.html"
    lines = (shared / "reddit" / "top_posts_csv" / "askreddit.csv").read_text(encoding="utf-8-sig").splitlines()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(page, tmp_path / folder / page.name)
        (tmp_path / folder / "askreddit.csv").write_text("\n".join(lines[:40]) + "\n", encoding="utf-8")
    result = build(load_recipe("lima"), inputs=[tmp_path / "a", tmp_path / "b"], sources=["wikihow", "reddit"],
                   out_dir=tmp_path / "out", quiet=True)
    rows = [json.loads(line) for split in ("train", "test")
            for line in (result.path / f"{split}.jsonl").read_text().splitlines()]
    ids = Counter(r["id"] for r in rows)
    assert ids["wikihow/Grill-Flank-Steak"] == 1
    assert sum(1 for i in ids if i.startswith("reddit/")) >= 10 and max(ids.values()) == 1
    clusters = [json.loads(line) for line in (result.path / "report" / "dedup_clusters.jsonl").read_text().splitlines()]
    steak = next(c for c in clusters if c["keeper"] == "wikihow/Grill-Flank-Steak")
    assert [m["reason"] for m in steak["members"]] == [None, "duplicate_id"]
    dropped = [r for r in iter_rejects(result.path, filter_name="dedup") if r["id"] == "wikihow/Grill-Flank-Steak"]
    assert len(dropped) == 1 and dropped[0]["reason"] == "duplicate_id"


def test_duplicate_id_is_linked_even_with_dedup_off():
    a = Candidate("wikihow/X", "wikihow", "d", "How to x?", "One text.")
    b = Candidate("wikihow/X", "wikihow", "d", "How to x?", "Another text of the same page.")
    result = Dedup({"enabled": False}).run([a, b])
    assert result.decision(a) == (2, None) and result.decision(b) == (2, "duplicate_id")
    assert result.decisions["wikihow/X"] == (2, None)
