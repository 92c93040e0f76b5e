"""wikiHow reader on the real pages and per-step CSV in ../shared/data, and on fixtures in the documented
WikiHow-Dataset layouts (wikihowAll.csv, wikihowSep.csv) and JSON lines."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter

import pytest

from lima_data.build import build
from lima_data.candidate import Candidate
from lima_data.filters.pii import Pii
from lima_data.filters.title_not_howto import TitleNotHowto
from lima_data.recipe import load_recipe
from lima_data.report import iter_rejects
from lima_data.selection import category_sample
from lima_data.sources.wikihow import (
    WikiHowSource,
    clean_title,
    parse_title,
    rewrite_intro,
    strip_debris,
    title_to_prompt,
)

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


# -- page debris, title forms, PII rule (issue 11) -------------------------------------------------------------

#: What no wikiHow train row may keep: citation pop-ups and numbers, reader polls, image tags / inline icon JSON,
#: sentences naming the site, bold step headlines (LIMA's release has none of them).
DEBRIS = re.compile(r"X (?:Research|Expert|Trustworthy) [Ss]ource|Go to source|Expert Interview|\[\d+\]"
                    r"|Reader Poll|Take Poll|wikiHow|smallUrl|mw-parser-output|!\[|\[\[|\{\{|<img|\*\*")


@pytest.fixture(scope="module")
def wikihow_build(tmp_path_factory, shared):
    out = tmp_path_factory.mktemp("manifests")
    result = build(load_recipe("lima"), inputs=[shared / "wikihow"], sources=["wikihow"], out_dir=out, name="wh",
                   quiet=True)
    rows = [json.loads(line) for split in sorted(result.path.glob("*.jsonl"))  # train, and dev filled from the pool
            for line in open(split, encoding="utf-8")]
    return result, rows


def test_no_train_row_keeps_page_debris_or_a_broken_prompt(wikihow_build, shared):
    result, rows = wikihow_build
    raw = (shared / "wikihow" / "scraped_paragraphs" / "wikihow.csv").read_text(encoding="utf-8")
    assert raw.count("X Expert Source") > 100 and raw.count("[Take Poll]") >= 7  # the input has them
    assert len(rows) >= 190
    for row in rows:
        prompt, response = (m["content"] for m in row["messages"])
        assert re.fullmatch(r"How to [^A-Z]+\?", prompt), prompt  # lower case after "How", never "How to 19"
        assert not re.match(r"How to \d", prompt)
        found = DEBRIS.search(response)
        assert found is None, (row["id"], response[max(0, found.start() - 80):found.end() + 80])
        assert response.count("## ") >= 1  # method headings (a lone unnamed method: "## Steps")
    # the debris no longer drops good articles as leftover markup
    funnel = {s["filter"]: s for s in result.manifest["funnel"]["wikihow"]["stages"]}
    assert "leftover_markup" not in funnel["quality"]["dropped"]


def test_listicle_titles_are_dropped_with_a_reason(wikihow_build):
    result, rows = wikihow_build
    rejects = {r["id"]: r for r in iter_rejects(result.path, filter_name="title_not_howto")}
    assert "wikihow/19-Powerful-Prayers-for-a-Financial-Miracle-from-God" in rejects
    assert "wikihow/Angel-Number-333-Meaning-in-Love-Spirituality-More" in rejects
    assert {r["reason"] for r in rejects.values()} == {"title_not_howto"}
    prompts = {row["messages"][0]["content"] for row in rows}
    assert "How to install vinyl plank flooring on concrete?" in prompts  # "Easy Ways to ..." made a question
    assert "How to get stronger and thicker wrists?" in prompts           # "Expert Advice on How to ..."


@pytest.mark.parametrize("title, form, prompt", [
    ("How to Thin Your Blood: Can Natural Remedies Help?", "how_to", "How to thin your blood?"),
    ("How to Teach a Kid to Roller Skate in 14 Easy and Safe Steps", "how_to", "How to teach a kid to roller skate?"),
    ("Easy Ways to Install Vinyl Plank Flooring on Concrete", "ways_to",
     "How to install vinyl plank flooring on concrete?"),
    ("3 Simple Ways to Fix a Cigarette Lighter in a Car - wikiHow", "ways_to",
     "How to fix a cigarette lighter in a car?"),
    ("Expert Advice on How to Get Stronger and Thicker Wrists - wikiHow", "how_to",
     "How to get stronger and thicker wrists?"),
    ("Kill Flying Termites: 3 Ways to Get Rid of Alates and Their Colony", "ways_to",
     "How to get rid of alates and their colony?"),
    ("Grill Flank Steak", "task", "How to grill flank steak?"),
    ("Why Do You Get Sleepy Around Someone You Love? 8 Reasons", "question",
     "Why do you get sleepy around someone you love?"),
    ("19 Powerful Prayers for a Financial Miracle from God", "listicle",
     "19 Powerful Prayers for a Financial Miracle from God?"),
    ("20+ of the Best AI Writing Tools", "listicle", "20+ of the Best AI Writing Tools?"),
    ("Angel Number 333: Meaning in Love, Spirituality, & More", "listicle",
     "Angel Number 333: Meaning in Love, Spirituality, & More?"),
    ("Titanium Dioxide Explained: How to Mix and Use It", "listicle",
     "Titanium Dioxide Explained: How to Mix and Use It?"),  # "it" points back at the title
])
def test_title_forms(title, form, prompt):
    assert parse_title(title)[0] == form
    assert title_to_prompt(title) == prompt
    keep = TitleNotHowto()
    assert keep(Candidate("w", "wikihow", "d", prompt, "r", meta={"title_form": form}))[1] == (
        None if form in ("how_to", "ways_to", "task") else "title_not_howto")
    assert TitleNotHowto(forms=["question"])(
        Candidate("w", "wikihow", "d", prompt, "r", meta={"title_form": "question"}))[1] is None


def test_strip_debris_on_real_steps(shared):
    rows = list(csv.DictReader(open(shared / "wikihow" / "scraped_paragraphs" / "wikihow.csv", encoding="utf-8")))
    microwave = next(r["paragraph"] for r in rows if "Bridgett Price" in r["paragraph"])
    text, removed = strip_debris(microwave)
    assert "Wash the turntable with soapy water." in text and "Bridgett" not in text and "[2]" not in text
    assert removed["citations"] >= 2
    poll = next(r["paragraph"] for r in rows if "We asked 232 wikiHow readers" in r["paragraph"])
    text, removed = strip_debris(poll)
    assert removed["polls"] == 1 and "Reader Poll" not in text and "Take Poll" not in text
    assert "Talking to a counselor or therapist might not be the first thing" in text  # the advice stays
    icon = next(r["paragraph"] for r in rows if "smallUrl" in r["paragraph"])
    text, removed = strip_debris(icon)
    assert removed["images"] >= 1 and "{" not in text and "Fair Use" not in text
    text, removed = strip_debris("Soy is central.[14] X Research source This wikiHow article offers some ideas on "
                                 "vegan cooking. Remember, though.")
    assert text == "Soy is central. Remember, though." and removed["site_sentences"] == 1


def test_pii_keeps_public_contacts_in_wikihow_but_masks_user_posts(wikihow_build):
    _, rows = wikihow_build
    phishing = next(r for r in rows if r["id"] == "wikihow/Report-Phishing")["messages"][1]["content"]
    assert "Call TransUnion (800) 680-7289, Equifax (800) 525-6285 or Experian (888) 397-3742" in phishing
    assert "Forward phishing emails to spam@uce.gov." in phishing
    assert "[PHONE]" not in phishing and "[EMAIL]" not in phishing
    # the same sentence in a user post (the default: every kind masked) loses the numbers
    post = Candidate("reddit/x/1", "reddit", "x", "p", "Call TransUnion (800) 680-7289 or mail me at jo@example.com")
    value, _ = Pii()(post)
    assert post.response == "Call TransUnion [PHONE] or mail me at [EMAIL]" and value["phone"] == 1
    article = Candidate("wikihow/x", "wikihow", "x", "p", "Call TransUnion (800) 680-7289.")
    value, _ = Pii(mask=[])(article)
    assert article.response == "Call TransUnion (800) 680-7289." and value["phone"] == 1  # counted, kept


def test_debris_and_titles_in_every_format(tmp_path, shared):
    """The same cleaning in the WikiHow-Dataset CSV shapes and JSON lines (fixtures quote real debris)."""
    cite = ("[2] X Expert Source Bridgett PriceProfessional Cleaner Expert Interview. 23 May 2019. "
            "[3] X Trustworthy Source Mayo Clinic Educational website from one of the world's leading hospitals "
            "Go to source")
    poll = ("Reader Poll: We asked 232 wikiHow readers how they build self-confidence, and only 9% of them said "
            "Seeking therapy. [Take Poll]")
    all_csv = tmp_path / "wikihowAll.csv"
    with open(all_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["headline", "title", "text"])
        writer.writerow(["x", "How to Disable JavaScript",
                         f"This wikiHow teaches you how to turn off JavaScript.{cite}\n"
                         f"Open the settings. {poll} Click Privacy."])
        writer.writerow(["x", "19 Powerful Prayers for a Financial Miracle from God",
                         "Pray daily.[1] X Research source"])
    sep_csv = tmp_path / "wikihowSep.csv"
    with open(sep_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["overview", "headline", "text", "sectionLabel", "title"])
        writer.writerow(["Clean it.", "Mix a paste.", f" Use baking soda.[1] X Research source Wash the tray.{cite}",
                         "Steps", "Easy Ways to Clean a Microwave"])
    jsonl = tmp_path / "articles.jsonl"
    jsonl.write_text(json.dumps({"title": "Grill Fish", "category": "Recipes",
                                 "text": "Heat the grill. ![Grill](https://www.wikihow.com/images/a.jpg) "
                                         "[[Image:Grill.jpg]] Oil it."}) + "\n")
    candidates, _, shards = read([all_csv, sep_csv, jsonl])
    assert {s.kind for s in shards} == {"wikihow_all_csv", "wikihow_sep_csv", "wikihow_jsonl"}
    by_id = {c.id: c for c in candidates}
    js = by_id["wikihow/Disable-JavaScript"]
    assert js.response == ("The following answer teaches you how to turn off JavaScript.\n\n"
                           "Open the settings. Click Privacy.")
    assert js.prompt == "How to disable javascript?" and js.meta["removed"] == {"citations": 2, "polls": 1}
    prayers = by_id["wikihow/19-Powerful-Prayers-for-a-Financial-Miracle-from-God"]
    assert prayers.meta["title_form"] == "listicle" and not prayers.prompt.startswith("How to")
    assert TitleNotHowto()(prayers)[1] == "title_not_howto"
    micro = by_id["wikihow/Clean-a-Microwave"]
    assert micro.prompt == "How to clean a microwave?" and micro.meta["title_form"] == "ways_to"
    assert micro.response == "Clean it.\n\n## Steps\n\n1. Mix a paste. Use baking soda. Wash the tray."
    assert by_id["wikihow/Grill-Fish"].response == "Heat the grill. Oil it."


def test_articles_about_wikihow_keep_their_sentences(tmp_path):
    path = tmp_path / "articles.jsonl"
    text = "Log in to wikiHow. Click Edit on the wikiHow article.[1] X Research source Save it."
    path.write_text(json.dumps({"title": "How to Edit a wikiHow Article", "category": "wikiHow", "text": text})
                    + "\n" + json.dumps({"title": "Grill Fish", "category": "Recipes", "text": text}) + "\n")
    (about, other), _, _ = read([path])
    assert about.response == "Log in to wikiHow. Click Edit on the wikiHow article. Save it."
    assert other.response == "Save it."


def test_prompt_case_is_checked():
    from lima_data.errors import RecipeError

    with pytest.raises(RecipeError, match="prompt_case"):
        WikiHowSource({"prompt_case": "upper"})
