"""Reddit reader on the real Pushshift files and top-post CSVs in ../shared/data, and on comment-thread fixtures
written in Pushshift's layout (zstd NDJSON, plain NDJSON with Arctic Shift's _meta)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import zstandard

from lima_data.filters import build_filter
from lima_data.recipe import load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.reddit import RedditSource

from .conftest import SHARED, read_source


def read(paths, **settings):
    candidates, stats, shards = read_source(RedditSource(settings), paths)
    return candidates, {s.path.name: st for s, st in stats.items()}, shards


@pytest.fixture(scope="module")
def chain():
    spec = load_recipe("lima").sources["reddit"]
    return [build_filter(n, spec.filters.get(n, {}), 0) for n in spec.chain]


def run(chain, candidate):
    for flt in chain:
        value, reason = flt(candidate)
        if reason:
            return flt.name, reason
    return None


def test_pushshift_files_are_filtered_by_subreddit_first(shared):
    candidates, stats, shards = read([shared / "reddit" / "zst"])
    assert {s.path.name: s.kind for s in shards} == {"AskMen_submissions.zst": "pushshift_zst:submissions",
                                                     "RC_2005-12.zst": "pushshift_zst:comments"}
    assert candidates == []
    assert stats["AskMen_submissions.zst"].rows == 13050
    assert stats["AskMen_submissions.zst"].counts == {"other_subreddits": 13050}
    assert stats["RC_2005-12.zst"].counts == {"other_subreddits": 1075}


def test_pushshift_submissions_and_comments_read(shared):
    candidates, stats, _ = read([shared / "reddit" / "zst"], subreddits=["AskMen", "reddit.com"], min_top=0)
    assert Counter(c.domain for c in candidates) == {"askmen": 13050}
    assert stats["RC_2005-12.zst"].counts["comments"] == 1075
    first = next(c for c in candidates if c.id == "reddit/askmen/dbkq9e")
    assert first.prompt == "Could I have some male insight into this?"
    assert first.meta["url"].startswith("https://www.reddit.com/r/AskMen/comments/dbkq9e/")


def test_top_post_csvs(shared, chain):
    candidates, stats, shards = read([shared / "reddit" / "top_posts_csv"])
    assert {s.kind for s in shards} == {"reddit_csv:submissions"}
    by_group = Counter(c.meta["group"] for c in candidates)
    assert by_group == {"writingprompts": 1000, "askreddit": 987}
    outcomes = Counter((c.meta["group"], run(chain, c)) for c in candidates)
    # No comments in these files: every WritingPrompts post that passes its tag check lacks a response.
    assert outcomes[("writingprompts", ("prompt_tag", "other_tag"))] == 51
    assert outcomes[("writingprompts", ("prompt_tag", "untagged"))] == 1
    assert outcomes[("writingprompts", ("nsfw", "nsfw"))] == 1
    assert outcomes[("writingprompts", ("has_response", "no_response"))] == 947
    assert outcomes[("askreddit", None)] == 870
    # Short titles are judged leniently (a detector's guess on 20-60 characters is noise): no English title is
    # dropped as another language (before issue 11, 6 were: "What's an unfun fact?", ...).
    assert outcomes[("askreddit", ("language", "not_english"))] + outcomes[("askreddit", ("language",
                                                                                        "language_uncertain"))] == 0
    assert outcomes[("askreddit", ("nsfw", "nsfw"))] == 106
    assert outcomes[("askreddit", ("title_only", "has_body"))] == 11


def test_wp_tag_is_removed_and_other_tags_dropped(shared):
    f = build_filter("prompt_tag", {}, 0)
    candidates, _, _ = read([shared / "reddit" / "top_posts_csv" / "writingprompts.csv"])
    hitler = next(c for c in candidates if c.id == "reddit/writingprompts/5uilpw")
    assert f(hitler) == ("WP", None) and hitler.prompt.startswith("The year is 1910. Adolf Hitler")
    tags = Counter(f(c)[0] for c in candidates)
    assert tags["WP"] > 900 and {"EU", "TT"} & set(tags)


def _thread():
    submissions = [
        {"id": "wp1", "subreddit": "WritingPrompts", "title": "[WP] A dragon opens a bakery.", "selftext": "",
         "score": 5000, "over_18": False, "stickied": False, "author": "ann", "created_utc": 1,
         "permalink": "/r/WritingPrompts/comments/wp1/x/", "num_comments": 6},
        {"id": "wp2", "subreddit": "WritingPrompts", "title": "[WP] Nobody answers this one.", "selftext": "",
         "score": 10, "over_18": False, "permalink": "/r/WritingPrompts/comments/wp2/y/"},
        {"id": "nsfw1", "subreddit": "WritingPrompts", "title": "[WP] Something adult.", "score": 900,
         "over_18": True, "permalink": "/r/WritingPrompts/comments/nsfw1/z/"},
        {"id": "ar1", "subreddit": "AskReddit", "title": "What is the best advice you ever got?", "selftext": "",
         "score": 70000, "over_18": False, "permalink": "/r/AskReddit/comments/ar1/q/"},
        {"id": "other", "subreddit": "AskMen", "title": "Hi", "score": 1},
    ]
    lima = [json.loads(line) for line in (SHARED / "lima" / "lima_train_slice.jsonl").read_text().splitlines()]
    story = next(r["conversations"][1] for r in lima if r["source"] == "writingprompts"
                 and 500 <= len(r["conversations"][1]) <= 4096)  # a real story from LIMA's set
    comments = [
        {"id": "c1", "link_id": "t3_wp1", "parent_id": "t3_wp1", "subreddit": "WritingPrompts",
         "author": "AutoModerator", "body": "Reminder: " + "rules " * 100, "score": 9999, "stickied": True},
        {"id": "c2", "link_id": "t3_wp1", "parent_id": "t3_wp1", "subreddit": "WritingPrompts", "author": "bob",
         "body": story, "score": 300},
        {"id": "c3", "link_id": "t3_wp1", "parent_id": "t3_wp1", "subreddit": "WritingPrompts", "author": "cat",
         "body": "Too short.", "score": 800},
        {"id": "c4", "link_id": "t3_wp1", "parent_id": "t3_wp1", "subreddit": "WritingPrompts",
         "author": "[deleted]", "body": "[deleted]", "score": 700},
        {"id": "c5", "link_id": "t3_wp1", "parent_id": "t1_c2", "subreddit": "WritingPrompts", "author": "dan",
         "body": "A reply: " + story, "score": 1000},
        {"id": "c6", "link_id": "t3_wp1", "parent_id": "t3_wp1", "subreddit": "WritingPrompts", "author": "eve",
         "body": "The second story &amp; its ending. " * 20, "score": 250, "_meta": {"retrieved_2nd_on": 1}},
    ]
    return submissions, comments, story


def _write_zst(path, rows):
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(data))


@pytest.mark.parametrize("layout", ["per_subreddit_zst", "monthly_ndjson"])
def test_comment_thread_fixture(tmp_path, chain, layout):
    submissions, comments, story = _thread()
    if layout == "per_subreddit_zst":
        _write_zst(tmp_path / "WritingPrompts_submissions.zst", submissions)
        _write_zst(tmp_path / "WritingPrompts_comments.zst", comments)
    else:  # uncompressed, Arctic Shift style, names that say nothing: recognised by content
        (tmp_path / "posts.ndjson").write_text("".join(json.dumps(r) + "\n" for r in submissions))
        (tmp_path / "replies.ndjson").write_text("".join(json.dumps(r) + "\n" for r in comments) + "{oops\n")
    candidates, stats, _ = read([tmp_path])
    by_id = {c.id: c for c in candidates}
    assert set(by_id) == {"reddit/writingprompts/wp1", "reddit/writingprompts/wp2", "reddit/writingprompts/nsfw1",
                          "reddit/askreddit/ar1"}
    wp1 = by_id["reddit/writingprompts/wp1"]
    assert wp1.response == story.strip() and wp1.score == 300 and wp1.meta["author"] == "bob"
    assert wp1.meta["eligible_comments"] == 2 and wp1.meta["comments_read"] == 5
    assert wp1.meta["comment_url"] == "https://www.reddit.com/r/WritingPrompts/comments/wp1/x/c2/"
    assert run(chain, wp1) is None and wp1.prompt == "A dragon opens a bakery."
    assert run(chain, by_id["reddit/writingprompts/wp2"]) == ("has_response", "no_response")
    assert run(chain, by_id["reddit/writingprompts/nsfw1"]) == ("nsfw", "nsfw")
    assert run(chain, by_id["reddit/askreddit/ar1"]) is None
    if layout == "monthly_ndjson":
        assert stats["replies.ndjson"].malformed == 1 and stats["replies.ndjson"].errors[0]["line"] == 7


def test_nsfw_can_be_allowed():
    from lima_data.candidate import Candidate

    adult = Candidate("reddit/x/1", "reddit", "x", "p", "r", meta={"over_18": True})
    assert build_filter("nsfw", {}, 0)(adult) == (True, "nsfw")
    assert build_filter("nsfw", {"allow": True}, 0)(adult) == (True, None)


def askmen_rows(shared):
    with open(shared / "reddit" / "zst" / "AskMen_submissions.zst", "rb") as fh:
        text = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_only_the_top_k_submissions_by_score_are_held(shared):
    every, _, _ = read([shared / "reddit" / "zst"], subreddits=["AskMen"], min_top=0)
    held, stats, _ = read([shared / "reddit" / "zst"], subreddits=["AskMen"], min_top=500)
    best = sorted(every, key=lambda c: (-c.meta["submission_score"], c.id))[:500]
    assert {c.id for c in held} == {c.id for c in best}
    assert [c.to_dict() for c in held] == [c.to_dict() for c in every if c.id in {b.id for b in best}]
    assert stats["AskMen_submissions.zst"].counts["below_top_k"] == 13050 - 500
    source = RedditSource({"subreddits": ["AskMen"], "top_margin": 20, "min_top": 100})
    source.quotas = {"askmen": 30}
    assert source.keep_top("AskMen") == 600 and source.keep_top("other") == 100


def test_monthly_files_join_across_months(shared, tmp_path):
    """Real AskMen submissions (all of 2019-10) split in time order into three RS_ files standing for three
    months; their comments in RC_ files of later months."""
    rows = sorted(askmen_rows(shared), key=lambda r: (int(r["created_utc"]), r["id"]))
    third = len(rows) // 3
    months = {"2019-10": rows[:third], "2019-11": rows[third:2 * third], "2019-12": rows[2 * third:]}
    for month, part in months.items():
        _write_zst(tmp_path / f"RS_{month}.zst", part)
    lima = [json.loads(line) for line in (SHARED / "lima" / "lima_train_slice.jsonl").read_text().splitlines()]
    stories = [r["conversations"][1] for r in lima if 500 <= len(r["conversations"][1]) <= 4096]
    ranked = sorted(rows, key=lambda r: (-int(r["score"]), r["id"]))
    commented = ranked[:40] + ranked[-5:]  # the last five fall below the top K
    comments = [{"id": f"c{k}", "link_id": f"t3_{r['id']}", "parent_id": f"t3_{r['id']}", "subreddit": "AskMen",
                 "author": "someone", "body": stories[k % len(stories)], "score": 10 + k}
                for k, r in enumerate(commented)]
    _write_zst(tmp_path / "RC_2031-01.zst", comments[::2])  # months after every submission, split over two files
    _write_zst(tmp_path / "RC_2031-02.zst", comments[1::2])
    candidates, stats, shards = read([tmp_path], subreddits=["AskMen"], min_top=1000)
    assert len(shards) == len(months) + 2 and len(candidates) == 1000
    by_id = {c.meta["submission_id"]: c for c in candidates}
    for k, row in enumerate(commented[:40]):
        assert by_id[row["id"]].response == stories[k % len(stories)].strip()
        assert by_id[row["id"]].meta["comment_id"] == f"c{k}"
    assert not {r["id"] for r in commented[40:]} & set(by_id)
    comment_counts = Counter()
    for name, st in stats.items():
        if name.startswith("RC_"):
            comment_counts.update(st.counts)
    assert comment_counts["comments"] == 45 and comment_counts["comments_without_submission"] == 5


def _one_pass(source, shards):
    """The reference: pass 1 as one pass over every submissions file in path order, then pass 2 as one pass over
    every comments file in path order (the single-process algorithm the per-file passes must reproduce)."""
    from lima_data.sources import ReaderStats
    from lima_data.sources.reddit import _sequential_top

    ordered = sorted(shards, key=lambda s: str(s.path))
    held, stats = _sequential_top(source, [s for s in ordered if s.kind.endswith(":submissions")])
    for shard in ordered:
        if not shard.kind.endswith(":submissions"):
            stats[str(shard.path)] = file_stats = ReaderStats(shard.label)
            for line, row in source.rows(shard, file_stats):
                source._comment(row, line, file_stats, held)
    return [source._candidate(held[k]) for k in sorted(held, key=lambda k: held[k]["order"])], stats


def _months(shared, tmp_path, repeat_ids=False):
    """Real AskMen submissions over three RS_ files (not in time order; one row in 7 relabelled r/AskMenOver30,
    which the reader skips, so each file counts other_subreddits among its kinds), the real RC_2005-12 comments
    (three times, new ids) pointed at them over two RC_ files, one comment id in both with the same score.
    ``repeat_ids``: a fourth RS_ file repeats 500 of the ids with other scores."""
    tmp_path.mkdir()
    rows = askmen_rows(shared)
    for k, row in enumerate(rows):
        if k % 7 == 3:
            row["subreddit"] = "AskMenOver30"
    parts = [rows[1::3], rows[0::3], rows[2::3]]
    for month, part in zip(("2019-10", "2019-11", "2019-12"), parts):
        _write_zst(tmp_path / f"RS_{month}.zst", part)
    if repeat_ids:
        _write_zst(tmp_path / "RS_2020-01.zst", [{**r, "score": int(r["score"]) * 3 % 1000} for r in rows[100:600]])
    with open(shared / "reddit" / "zst" / "RC_2005-12.zst", "rb") as fh:
        text = zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(fh).read().decode()
    real = [json.loads(line) for line in text.splitlines() if line.strip()]
    ranked = sorted((r for r in rows if r["subreddit"] == "AskMen"), key=lambda r: (-int(r["score"]), r["id"]))
    comments = []
    for k, comment in enumerate(real * 3):
        parent = ranked[k % 400]["id"]
        comments.append({**comment, "id": f"{comment['id']}x{k}", "subreddit": "AskMen", "parent_id": f"t3_{parent}",
                         "link_id": f"t3_{parent}", "body": (comment["body"] + " ") * (1 + k % 9)})
    _write_zst(tmp_path / "RC_2031-01.zst", comments[::2] + comments[1:2])
    _write_zst(tmp_path / "RC_2031-02.zst", comments[1::2])
    return tmp_path


@pytest.mark.parametrize("repeat_ids, id_parts", [(False, 64), (True, 64), (True, 1)])
def test_per_file_passes_give_what_one_pass_gives(shared, tmp_path, monkeypatch, repeat_ids, id_parts):
    """Per-file top K merged in file order, per-file best comments merged: the same candidates in the same order
    and the same reader counts (in the same key order) per file as one pass over all files; with repeated
    submission ids (the first-seen rule depends on what is held when a row comes) through the one-pass fallback;
    repeats found whether the ids are checked in one part or many."""
    from lima_data.sources import reddit
    from lima_data.sources.base import discover
    from lima_data.sources.reddit import _sequential_top

    monkeypatch.setattr(reddit, "ID_PARTS", id_parts)

    folder = _months(shared, tmp_path / "in", repeat_ids)
    settings = {"subreddits": ["AskMen"], "min_top": 150, "min_response_chars": 200}
    source = RedditSource(settings)
    source.workdir = tmp_path / "cache"
    found, _ = discover([folder], [source])
    shards = found["reddit"]
    expected, expected_stats = _one_pass(RedditSource(settings), shards)
    one_pass = []
    monkeypatch.setattr(reddit, "_sequential_top", lambda *a: one_pass.append(1) or _sequential_top(*a))
    stats = {}
    candidates = list(source.read(shards, lambda s: stats.setdefault(s, ReaderStats(s.label)), lambda s: None))
    assert bool(one_pass) == repeat_ids  # the fallback runs only when an id repeats
    assert [c.to_dict() for c in candidates] == [c.to_dict() for c in expected]
    assert len(candidates) == 150 and sum(c.response != "" for c in candidates) > 100
    for shard in shards:
        want = expected_stats[str(shard.path)].to_dict()
        assert stats[shard].to_dict() == want and list(stats[shard].counts) == list(want["counts"])
    below = sum(st.counts.get("below_top_k", 0) for st in stats.values())
    offered = sum(st.counts.get("submissions", 0) - st.counts.get("duplicate_submissions", 0)
                  for st in stats.values())
    assert below == offered - 150
    assert (sum(st.counts.get("duplicate_submissions", 0) for st in stats.values()) > 0) == repeat_ids
    assert any(list(st.counts)[-1] != "below_top_k" for st in stats.values() if "below_top_k" in st.counts)


def test_join_is_stored_in_the_cache_and_reused(shared, tmp_path, monkeypatch):
    """The joined result lives in ``workdir`` (``reddit-join/<key>/``), keyed by the files and settings: a second
    reader with the same settings reads it without reading a file; other settings join again."""
    from lima_data.sources import reddit
    from lima_data.sources.base import discover

    folder = _months(shared, tmp_path / "in")
    first = RedditSource({"subreddits": ["AskMen"], "min_top": 100})
    first.workdir = tmp_path / "cache"
    found, _ = discover([folder], [first])
    shards = found["reddit"]
    before = [c.to_dict() for c in first.read(shards, lambda s: ReaderStats(s.label), lambda s: None)]
    (joined,) = (tmp_path / "cache" / "reddit-join").iterdir()
    assert sorted(p.name for p in joined.iterdir()) == ["held.jsonl", "stats.json"]

    def unread(*args):
        raise AssertionError("a file was read again")

    monkeypatch.setattr(reddit, "top_of_file", unread)
    monkeypatch.setattr(reddit, "best_of_file", unread)
    again = RedditSource({"subreddits": ["AskMen"], "min_top": 100})
    again.workdir = tmp_path / "cache"
    assert [c.to_dict() for c in again.read(shards, lambda s: ReaderStats(s.label), lambda s: None)] == before
    other = RedditSource({"subreddits": ["AskMen"], "min_top": 90})
    other.workdir = tmp_path / "cache"
    with pytest.raises(AssertionError, match="read again"):
        list(other.read(shards, lambda s: ReaderStats(s.label), lambda s: None))


def test_passes_run_in_worker_processes(shared, tmp_path):
    """prepare through a pool of two spawned processes (the build's ``--workers 2``) joins what one process
    joins."""
    from lima_data.executor import Runner
    from lima_data.sources.base import discover

    folder = _months(shared, tmp_path / "in")
    settings = {"subreddits": ["AskMen"], "min_top": 120}
    found, _ = discover([folder], [RedditSource(settings)])
    shards = found["reddit"]
    results = []
    for workers in (1, 2):
        source = RedditSource(settings)
        source.workdir = tmp_path / f"cache-{workers}"
        with Runner("local", workers) as runner:
            source.prepare(shards, source.workdir, runner.map)
        stats = {}
        candidates = [c.to_dict() for c in source.read(shards, lambda s: stats.setdefault(s, ReaderStats(s.label)),
                                                       lambda s: None)]
        results.append((candidates, {s.path.name: st.to_dict() for s, st in stats.items()}))
    assert results[0] == results[1] and len(results[0][0]) == 120


def test_yes_no_fields_written_as_text_are_read_as_text(tmp_path, shared):
    """Real AskMen submissions with ``over_18`` / ``stickied`` written as text: ``"false"`` is false (bool("false")
    was true: every such post was dropped as NSFW, or skipped as stickied), ``"true"`` is true."""
    with open(shared / "reddit" / "zst" / "AskMen_submissions.zst", "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read(1 << 20).decode("utf-8", "replace")
    rows = [json.loads(line) for line in text.splitlines()[:200] if line.strip()][:40]
    rows = [r for r in rows if r.get("over_18") is False][:20]
    assert len(rows) == 20
    for k, row in enumerate(rows):
        row["over_18"] = "true" if k % 4 == 0 else ("false" if k % 2 else "0")
    _write_zst(tmp_path / "RS_2019-10.zst", rows)
    candidates, _, _ = read([tmp_path], subreddits=["AskMen"], min_top=0)
    flags = {c.id.rsplit("/", 1)[1]: c.meta.get("over_18") for c in candidates}
    assert flags == {r["id"]: r["over_18"] == "true" for r in rows}
