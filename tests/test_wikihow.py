"""wikiHow reader on the real pages and per-step CSV in ../shared/data, and on fixtures in the documented
WikiHow-Dataset layouts (wikihowAll.csv, wikihowSep.csv) and JSON lines."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter

import pytest

from lima_data.candidate import Candidate
from lima_data.selection import category_sample
from lima_data.sources.wikihow import WikiHowSource, clean_title, rewrite_intro, title_to_prompt

from .conftest import read_source


def read(paths, **settings):
    return read_source(WikiHowSource(settings), paths)


@pytest.fixture(scope="module")
def pages(shared):
    candidates, stats, shards = read([shared / "wikihow" / "html_pages_2020"])
    return {c.id: c for c in candidates}


def test_html_pages(pages):
    assert len(pages) == 10
    steak = pages["wikihow/Grill-Flank-Steak"]
    assert steak.prompt == "How to grill flank steak?"
    assert steak.meta["category"] == "Food and Entertaining" == steak.domain
    assert steak.meta["categories"][0] == "Steak Dishes"
    assert steak.meta["licence"] == "CC BY-NC-SA 3.0"
    text = steak.response
    assert text.startswith("Flank steak is a flavorful cut of meat")
    assert "## Scoring and Seasoning the Meat\n\n1. Score your steak to a depth of" in text  # headline not bold
    assert "\n2. Choose a marinade or dry rub" in text and "**" not in text
    for pruned in ("## Tips", "Things You'll Need", "## References", "Related wikiHows", "Warnings"):
        assert pruned not in text
    for markup in ("<", "http", "![", "](", "WH.performance"):
        assert markup not in text


def test_top_category_of_every_page(pages):
    assert Counter(c.meta["category"] for c in pages.values()) == {
        "Food and Entertaining": 5, "Education and Communications": 2, "Health": 1, "Sports and Fitness": 1,
        "Home and Garden": 1}


def test_prune_is_a_recipe_option(shared):
    candidates, _, _ = read([shared / "wikihow" / "html_pages_2020" /
                             "How_to_Grill_Flank_Steak__15_Steps__with_Pictures__-_wikiHow.html"], prune=[])
    (steak,) = candidates
    assert "## Tips\n\n- Alter the marinade to suit your preferences." in steak.response
    assert "## Warnings" in steak.response


def test_per_step_csv(shared):
    candidates, stats, (shard,) = read([shared / "wikihow" / "scraped_paragraphs" / "wikihow.csv"])
    assert shard.kind == "wikihow_steps_csv"
    assert len(candidates) == 223 and stats[shard].rows == 223
    lint = next(c for c in candidates if c.id == "wikihow/Remove-Lint-from-Clothes")
    assert lint.prompt == "How to remove lint from clothes?"
    assert lint.response.startswith("## Steps\n\n1. Use a lint roller. You can find them in the laundry department")
    assert "Use a lint roller. Use a lint roller." not in lint.response  # heading not repeated


def test_titles_and_intro_rewrite():
    assert clean_title("How to Grill Flank Steak: 15 Steps (with Pictures) - wikiHow") == "Grill Flank Steak"
    assert clean_title("3 Simple Ways to Pass a Coding Interview - wikiHow") == "Pass a Coding Interview"
    assert title_to_prompt("How to Grill Flank Steak") == "How to grill flank steak?"
    assert title_to_prompt("Verify Your YouTube Account") == "How to verify your youtube account?"  # LIMA: all lower
    assert title_to_prompt("Verify Your YouTube Account", "words") == "How to verify your YouTube account?"
    assert rewrite_intro("This article explains how to grill.") == ("The following answer explains how to grill.", True)
    assert rewrite_intro("Grilling is fun.") == ("Grilling is fun.", False)


def test_wikihow_all_csv_fixture(tmp_path):
    """WikiHow-Dataset wikihowAll.csv: columns headline, title, text; one article a row."""
    path = tmp_path / "wikihowAll.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["headline", "title", "text"])
        writer.writerow(["\nKeep the grill hot.,\nOil the grates.", "How to Grill Fish",
                         " This article shows how to grill fish.\nHeat the grill to medium-high.;\nOil the grates."])
        writer.writerow(["\nRelax.", "How to Sleep Better", "Go to bed at the same time every night."])
        writer.writerow(["\nNothing.", "How to Do Nothing", ""])
    candidates, stats, (shard,) = read([path])
    assert shard.kind == "wikihow_all_csv"
    assert [c.prompt for c in candidates] == ["How to grill fish?", "How to sleep better?"]
    assert candidates[0].response == "The following answer shows how to grill fish.\n\nHeat the grill to medium-high.;\n\nOil the grates."
    assert candidates[0].meta["rewrote_this_article"]
    start = path.read_text().split('"\nNothing."')[0].count("\n") + 1
    assert stats[shard].malformed == 1 and stats[shard].errors[0] == {"line": start, "error": "row without text"}


def test_wikihow_sep_csv_fixture(tmp_path):
    """WikiHow-Dataset wikihowSep.csv: overview, headline, text, sectionLabel, title; one step a row."""
    path = tmp_path / "wikihowSep.csv"
    rows = [
        ("Grilled fish is healthy.", "Heat the grill.", " Heat it to medium-high.", "Preparing the Grill", "How to Grill Fish"),
        ("Grilled fish is healthy.", "Oil the grates.", " Use a paper towel.", "Preparing the Grill", "How to Grill Fish"),
        ("Grilled fish is healthy.", "Place the fish.", " Skin side down.", "Cooking the Fish", "How to Grill Fish"),
        ("Sleep matters.", "Keep a schedule.", " Same time every night.", "Steps", "How to Sleep Better"),
    ]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["overview", "headline", "text", "sectionLabel", "title"])
        writer.writerows(rows)
    candidates, _, (shard,) = read([path])
    assert shard.kind == "wikihow_sep_csv"
    fish, sleep = candidates
    assert fish.response == (
        "Grilled fish is healthy.\n\n## Preparing the Grill\n\n1. Heat the grill. Heat it to medium-high.\n"
        "2. Oil the grates. Use a paper towel.\n\n## Cooking the Fish\n\n1. Place the fish. Skin side down.")
    assert sleep.prompt == "How to sleep better?"


def test_jsonl_with_category_fixture(tmp_path):
    path = tmp_path / "articles.jsonl"
    rows = [
        {"title": "How to Grill Fish", "category": "Food and Entertaining > Recipes > Fish",
         "methods": [{"title": "Preparing", "steps": ["Heat the grill.", "Oil the grates."]}], "intro": "Tasty."},
        {"title": "How to Pack a Bag", "category": ["Packing", "Travel"], "text": "This article helps you pack."},
        "not an object",
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{bad json\n")
    candidates, stats, (shard,) = read([path])
    assert shard.kind == "wikihow_jsonl"
    fish, bag = candidates
    assert fish.meta["category"] == "Food and Entertaining"
    assert fish.response == "Tasty.\n\n## Preparing\n\n1. Heat the grill.\n2. Oil the grates."
    assert bag.meta["category"] == "Travel" and bag.response == "The following answer helps you pack."
    assert stats[shard].malformed == 2
    assert [e["line"] for e in stats[shard].errors] == [3, 4]


def test_category_first_then_article():
    pools = {"big": [Candidate(f"b{i}", "wikihow", "big", "p", "r") for i in range(100)],
             "small": [Candidate("s0", "wikihow", "small", "p", "r")]}
    picks = Counter(category_sample(pools, 1, random.Random(seed))[0].domain for seed in range(400))
    assert 0.4 < picks["small"] / 400 < 0.6  # categories are drawn uniformly, not by size
    assert len(category_sample(pools, 500, random.Random(0))) == 101
