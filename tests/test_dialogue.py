"""Stack Exchange dialogues from comment chains (issue 18; LIMA section 6), on the real dumps of ../shared/data."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace

import pytest
from lxml import etree

from lima_data.build import build
from lima_data.errors import InputError, RecipeError
from lima_data.filters.dialogue import DialogueClean, TurnCount, TurnLength, comment_markdown
from lima_data.recipe import load_recipe
from lima_data.sources.base import discover
from lima_data.sources.stackexchange import StackExchangeDialogueSource, StackExchangeSource, build_chain

from .conftest import read_source

BEER = "beer.stackexchange.com_2020/beer.stackexchange.com.7z"


def _xml_rows(path, root):
    """Every row of a real dump file, parsed independently of the reader (lxml iterparse)."""
    rows = []
    for _, element in etree.iterparse(str(path), tag="row"):
        rows.append(dict(element.attrib))
        element.clear()
    return rows


@pytest.fixture(scope="module")
def beer(se_dir):
    candidates, stats, shards = read_source(StackExchangeDialogueSource(), [se_dir / BEER])
    return candidates, stats[shards[0]]


@pytest.fixture(scope="module")
def history(se_dir):
    candidates, stats, shards = read_source(StackExchangeDialogueSource(), [se_dir / "history_meta"])
    return candidates, stats[shards[0]], se_dir / "history_meta"


def test_beer_archive_counts(beer):
    candidates, stats = beer
    assert stats.counts["questions"] == 1029 and stats.counts["answers"] == 2277  # data README
    assert stats.counts["comments"] == 3509
    assert "answers_below_min_score" not in stats.counts  # no answer_score filter: every answer is chained
    assert stats.malformed == 0 and not stats.truncated
    assert stats.counts["chains"] >= len(candidates) > 50
    assert len({c.id for c in candidates}) == len(candidates)
    assert all(c.id.startswith("stackexchange_dialogue/beer.stackexchange.com/") for c in candidates)


def test_speakers_are_the_asker_and_the_answerer_by_user_id(history):
    """Checked against the real Posts.xml / Comments.xml of history_meta, read independently."""
    candidates, stats, folder = history
    posts = {r["Id"]: r for r in _xml_rows(folder / "Posts.xml", "posts")}
    comments = {int(r["Id"]): r for r in _xml_rows(folder / "Comments.xml", "comments")}
    assert candidates
    for candidate in candidates:
        turns = candidate.meta["turns"]
        question = posts[str(candidate.meta["question_id"])]
        answer = posts[str(candidate.meta["answer_id"])]
        assert answer["ParentId"] == question["Id"] and question["OwnerUserId"] != answer["OwnerUserId"]
        roles = [t["role"] for t in turns]
        assert roles == ["user", "assistant"] * (len(turns) // 2) and len(turns) >= 4
        owner = {"user": question["OwnerUserId"], "assistant": answer["OwnerUserId"]}
        dates = []
        for turn in turns[2:]:
            for comment_id in turn["comment_ids"]:
                row = comments[comment_id]
                assert row["PostId"] == answer["Id"]  # comments on the answer
                assert row["UserId"] == owner[turn["role"]]
                dates.append(row["CreationDate"])
        assert dates == sorted(dates)  # in date order
        assert [c["id"] for c in candidate.meta["comments"]] == [i for t in turns[2:] for i in t["comment_ids"]]
        assert all(c["licence"].startswith("CC BY-SA") and f"#comment{c['id']}_" in c["url"]
                   for c in candidate.meta["comments"])


def test_a_real_chain_reads_as_a_dialogue(beer):
    """beer.stackexchange.com question 70: the asker asks how long skunking takes, the answerer replies."""
    candidates, _ = beer
    skunk = copy.deepcopy(next(c for c in candidates if c.meta["question_id"] == 70))
    DialogueClean()(skunk)
    messages = skunk.meta["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == "What is 'skunking'?"
    assert messages[1]["content"].startswith("Skunking is a stage in a beer's life")
    assert messages[2]["content"] == "How long does it take? Days? Weeks? Months?"
    assert messages[3]["content"].startswith("In some studies, it can happen as quick as 30 seconds.")
    assert skunk.response == messages[1]["content"] + "\n\n" + messages[3]["content"]
    assert "turns" not in skunk.meta and skunk.meta["url"] == "https://beer.stackexchange.com/questions/70"


def test_mentions_are_removed_from_real_comments(beer):
    candidates, _ = beer
    cleaner = DialogueClean()
    mentioned = 0
    for candidate in copy.deepcopy(candidates):
        raw = [t["content"] for t in candidate.meta["turns"][2:]]
        mentioned += sum("@" in text for text in raw)
        value, reason = cleaner(candidate)
        assert reason is None
        for message in candidate.meta["messages"][2:]:
            assert not any(word.startswith("@") for word in message["content"].split())
    assert mentioned > 0


def test_build_chain_rules():
    asker, answerer, other = 1, 2, 3
    comments = [("2020-01-01", 1, other, None),      # before the asker: skipped
                ("2020-01-02", 2, answerer, "edit"),  # the answerer before the asker: skipped
                ("2020-01-03", 4, asker, "why?"),
                ("2020-01-03", 3, asker, "so"),       # same date: comment id orders
                ("2020-01-04", 5, answerer, "because"),
                ("2020-01-05", 6, asker, "thanks"),   # unanswered: dropped
                ("2020-01-06", 7, other, "me too"),   # a third person ends the chain
                ("2020-01-07", 8, answerer, "you're welcome")]
    turns, skipped = build_chain(asker, answerer, comments)
    assert skipped == 2
    assert [(role, [text for _, _, text in parts]) for role, parts in turns] == [
        ("user", ["so", "why?"]), ("assistant", ["because"])]
    assert build_chain(asker, answerer, [("d", 1, answerer, "x"), ("e", 2, other, "y")]) == ([], 2)


def test_comment_markdown():
    assert comment_markdown("@JohnP yes, see [the article](http://en.wikipedia.org/wiki/Beer) &amp; more")[0] == \
        "Yes, see the article & more"
    text, changes = comment_markdown("I hope this answers it @JohnP. Mail me at a@b.org `@decorator`")
    assert text == "I hope this answers it. Mail me at a@b.org `@decorator`"
    assert changes == {"mentions": 1, "links": 0, "urls": 0, "votes": 0}
    assert comment_markdown("from the wiki `1 P = 4 points`, which fits, +1")[0] == \
        "from the wiki `1 P = 4 points`, which fits"
    assert comment_markdown("see http://example.com/x now")[0] == "see now"
    # real comments of bicycles.meta.stackexchange.com (question 330)
    assert comment_markdown("@Neil's answer currently has no downvotes.")[0] == \
        "Their answer currently has no downvotes."
    assert comment_markdown("No, sorry! [let us continue this discussion in chat](http://chat.stackexchange.com/r/1)"
                            )[0] == "No, sorry!"


def test_turn_filters():
    from lima_data.candidate import Candidate

    candidate = Candidate("x", "stackexchange_dialogue", "d", "q", "a", 10, meta={"messages": [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a" * 1300},
        {"role": "user", "content": "short"}, {"role": "assistant", "content": "b" * 50}]})
    assert TurnCount()(candidate) == (2, None)
    assert TurnCount(min_exchanges=3)(candidate)[1] == "too_few_turns"
    assert TurnLength()(candidate) == ({"answer": 1300, "shortest": 5, "longest": 50}, "turn_too_short")
    assert TurnLength(min_chars=5)(candidate)[1] is None
    assert TurnLength(min_chars=5, answer_min_chars=2000)(candidate)[1] == "answer_too_short"


def test_folder_comments_need_posts(tmp_path, se_dir):
    shutil.copy(se_dir / "history_meta" / "Comments.xml", tmp_path / "Comments.xml")
    with pytest.raises(InputError, match="no Posts.xml beside"):
        discover([tmp_path / "Comments.xml"], [StackExchangeDialogueSource()])
    found, skipped = discover([tmp_path], [StackExchangeDialogueSource()])
    assert found["stackexchange_dialogue"] == [] and skipped == [tmp_path / "Comments.xml"]


def test_archive_is_read_by_both_stackexchange_sources(se_dir):
    found, _ = discover([se_dir / BEER], [StackExchangeSource(), StackExchangeDialogueSource()])
    assert [s.member for s in found["stackexchange"]] == ["Posts.xml"]
    assert [s.member for s in found["stackexchange_dialogue"]] == ["Comments.xml"]
    found, _ = discover([se_dir / BEER], [StackExchangeDialogueSource(), StackExchangeSource()])
    assert found["stackexchange"] and found["stackexchange_dialogue"]


def test_filters_from_lends_the_style_lists():
    recipe = load_recipe("lima-dialogue")
    dialogue, single = recipe.sources["stackexchange_dialogue"], recipe.sources["stackexchange"]
    for name in ("first_person", "site_reference", "site_group", "prompt_choice"):
        assert dialogue.filters[name] == single.filters[name]
    assert "filters_from" not in dialogue
    assert dialogue.selection.quotas == {"stem": 10, "other": 10}


def test_filters_from_an_unknown_source(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('include = ["lima-dialogue.toml"]\n[sources.stackexchange_dialogue]\nfilters_from = "nope"\n')
    with pytest.raises(RecipeError, match="filters_from: 'nope' is not a source"):
        load_recipe(path)


def test_build_writes_multi_turn_rows(tmp_path):
    """The bundled beer archive, with LIMA's rules but a lower answer score and length for this small site."""
    recipe_path = tmp_path / "dialogue.toml"
    recipe_path.write_text("""
name = "dialogue"
include = ["lima-dialogue.toml", "sample.toml"]
[sources.stackexchange_dialogue]
inputs = ["package:samples/stackexchange"]
[sources.stackexchange_dialogue.filters.answer_score]
min_score = 3
[sources.stackexchange_dialogue.filters.turn_length]
answer_min_chars = 300
[sources.stackexchange_dialogue.selection]
quotas = { stem = 1, other = 4 }
""")
    build(load_recipe(recipe_path), sources=["stackexchange_dialogue"], out_dir=tmp_path / "out", quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "out" / "dialogue" / "train.jsonl").open()]
    assert len(rows) == 4  # no STEM site in the sample has a chain that passes
    for row in rows:
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and len(roles) >= 4
        assert row["meta"]["author_url"].startswith("https://beer.stackexchange.com/users/")
        assert row["meta"]["licence"].startswith("CC BY-SA")
        assert row["id"].startswith("stackexchange_dialogue/beer.stackexchange.com/")
    manifest = json.loads((tmp_path / "out" / "dialogue" / "manifest.json").read_text())
    stages = {s["filter"]: s for s in manifest["funnel"]["stackexchange_dialogue"]["stages"]}
    assert stages["first_person"]["dropped"]["first_person"] > 0


def test_a_dialogue_outlives_its_single_turn_twin_in_dedup(tmp_path, se_dir):
    """beer.stackexchange.com question 506 passes LIMA's single-turn rules and, with its comment chain, the
    dialogue rules: the same question and answer; dedup keeps the dialogue (it holds the single-turn row whole)."""
    build(load_recipe("lima-dialogue"), inputs=[se_dir / BEER], sources=["stackexchange", "stackexchange_dialogue"],
          out_dir=tmp_path, quiet=True)
    rows = [json.loads(line) for line in (tmp_path / "lima-dialogue" / "train.jsonl").open()]
    ids = {row["id"] for row in rows}
    assert "stackexchange_dialogue/beer.stackexchange.com/506" in ids
    assert "stackexchange/beer.stackexchange.com/506" not in ids
    dialogue = next(row for row in rows if row["id"] == "stackexchange_dialogue/beer.stackexchange.com/506")
    assert [m["role"] for m in dialogue["messages"]] == ["user", "assistant", "user", "assistant"]
    assert dialogue["messages"][3]["content"].startswith("Yes, it's about that roughly.")
    clusters = (tmp_path / "lima-dialogue" / "report" / "dedup_clusters.jsonl").read_text()
    assert "stackexchange/beer.stackexchange.com/506" in clusters


def test_min_answer_score_bounds_what_is_held(se_dir):
    source = StackExchangeDialogueSource({"min_answer_score": 10})
    candidates, stats, shards = read_source(source, [se_dir / BEER])
    counts = stats[shards[0]].counts
    assert counts["answers_below_min_score"] > 2000
    assert candidates and all(c.score >= 10 for c in candidates)


def test_cut_comments_file_is_counted_not_fatal(tmp_path, se_dir):
    site = tmp_path / "history_meta"
    site.mkdir()
    shutil.copy(se_dir / "history_meta" / "Posts.xml", site / "Posts.xml")
    lines = (se_dir / "history_meta" / "Comments.xml").read_bytes().splitlines(keepends=True)
    bad = lines[10].replace(b'PostId="', b'PostId="x')
    (site / "Comments.xml").write_bytes(b"".join(lines[:10] + [bad[:40] + b"\n"] + lines[11:2000]))
    candidates, stats, shards = read_source(StackExchangeDialogueSource(), [site])
    reader = stats[shards[0]]
    assert reader.truncated and reader.malformed == 1 and reader.errors[0]["line"] == 11
    assert reader.counts["comments"] == 2000 - 3 - 1  # 2,000 lines: the XML declaration, DOCTYPE and root, the cut row
    assert candidates
    with pytest.raises(InputError, match="Comments.xml"):
        read_source(StackExchangeDialogueSource(strict=True), [site])


def test_archive_members_are_listed_by_the_7zip_path_and_by_py7zr(se_dir, monkeypatch):
    from lima_data.sources.stackexchange import sevenzip

    shard = discover([se_dir / BEER], [StackExchangeDialogueSource()])[0]["stackexchange_dialogue"][0]
    assert shard.member == "Comments.xml"
    list_members = sevenzip.list_members
    monkeypatch.setattr(sevenzip, "list_members",  # as a listing with the files in a folder would name them
                        lambda path: [replace(m, name=f"site/{m.name}") for m in list_members(path)])
    moved = discover([se_dir / BEER], [StackExchangeDialogueSource()])[0]["stackexchange_dialogue"][0]
    assert moved.member == "site/Comments.xml"  # the member comes from sevenzip's listing
    monkeypatch.setattr(sevenzip, "list_members", list_members)
    monkeypatch.setattr(sevenzip, "find_7zip", lambda: None)  # the py7zr fallback lists the same members
    assert discover([se_dir / BEER], [StackExchangeDialogueSource()])[0]["stackexchange_dialogue"] == [shard]


def test_comments_file_of_another_kind_is_named(tmp_path, se_dir):
    site = tmp_path / "history_meta"
    site.mkdir()
    shutil.copy(se_dir / "history_meta" / "Posts.xml", site / "Posts.xml")
    text = (se_dir / "history_meta" / "Comments.xml").read_bytes()
    assert b"\n<comments>" in text
    (site / "Comments.xml").write_bytes(text.replace(b"\n<comments>", b"\n<users>", 1))
    with pytest.raises(InputError, match=r"Comments.xml:\d+: not a Comments.xml: the root element is <users>"):
        read_source(StackExchangeDialogueSource(), [site])
    (site / "Comments.xml").write_bytes(b"PostId,Text\n1,hello\n")
    with pytest.raises(InputError, match=r"Comments.xml:1: not an XML file \(expected a Stack Exchange Comments.xml"):
        read_source(StackExchangeDialogueSource(), [site])


def test_a_comments_xml_named_explicitly_goes_to_the_dialogue_source(tmp_path, se_dir):
    folder = tmp_path / "history.meta.stackexchange.com"
    folder.mkdir()
    for name in ("Posts.xml", "Comments.xml"):
        shutil.copy(se_dir / "history_meta" / name, folder / name)
    found, skipped = discover([folder / "Comments.xml"], [StackExchangeSource(), StackExchangeDialogueSource()])
    assert found["stackexchange"] == [] and [s.kind for s in found["stackexchange_dialogue"]] == ["comments_xml"]
