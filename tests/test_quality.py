"""Dedup, language, quality, PII and decontamination on real text."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

from lima_data.build import build
from lima_data.candidate import Candidate
from lima_data.filters import build_filter
from lima_data.filters.dedup import Dedup, normalise
from lima_data.filters.quality import quality_measures
from lima_data.recipe import load_recipe
from lima_data.sources import ReaderStats
from lima_data.sources.stackexchange import StackExchangeReader, discover


def lima_filter(source, name):
    spec = load_recipe("lima").sources[source]
    return build_filter(name, spec.filters.get(name, {}), 0)


def test_same_site_under_two_names_gives_no_duplicate(tmp_path, se_dir):
    for name in ("coffee", "coffee_copy"):
        (tmp_path / "dumps" / name).mkdir(parents=True)
        shutil.copy(se_dir / "coffee" / "Posts.xml", tmp_path / "dumps" / name / "Posts.xml")
    result = build(load_recipe("lima"), inputs=[tmp_path / "dumps"], sources=["stackexchange"],
                   out_dir=tmp_path / "out", quiet=True)
    rows = [json.loads(line) for line in (result.path / "train.jsonl").read_text().splitlines()]
    responses = [normalise(r["messages"][1]["content"]) for r in rows]
    assert rows and len(set(responses)) == len(responses)
    assert {r["domain"] for r in rows} == {"coffee.stackexchange.com"}  # the copy's id sorts after: dropped
    dedup = next(s for s in result.manifest["funnel"]["stackexchange"]["stages"] if s["filter"] == "dedup")
    assert dedup["dropped"] == {"exact_duplicate": len(rows)} and dedup["kept"] == len(rows)
    clusters = [json.loads(line) for line in (result.path / "report" / "dedup_clusters.jsonl").read_text().splitlines()]
    assert len(clusters) == len(rows) and all(c["size"] == 2 for c in clusters)


def test_reposted_title_with_one_word_changed(shared):
    import csv

    with open(shared / "reddit" / "top_posts_csv" / "askreddit.csv", encoding="utf-8-sig") as fh:
        posts = list(csv.DictReader(fh))[:200]
    candidates = [Candidate(f"reddit/askreddit/{p['id']}", "reddit", "askreddit", p["title"], "", int(p["score"]))
                  for p in posts]
    original = next(c for c in candidates if len(c.prompt.split()) >= 8)
    words = original.prompt.split()
    words[len(words) // 2] = "banana"
    repost = Candidate("reddit/askreddit/zzrepost", "reddit", "askreddit", " ".join(words), "", 5)
    result = Dedup().run(candidates + [repost])
    assert result.decisions[repost.id] == (2, "similar_prompt")
    assert result.decisions[original.id] == (2, None)
    assert Counter(r for _, r in result.decisions.values())[None] >= 195  # real titles stay distinct


def test_near_duplicate_answer_with_edits(se_dir):
    (dump,) = discover([se_dir / "matheducators"])
    answers = [c for c in StackExchangeReader().read(dump, ReaderStats(dump.label)) if len(c.response) > 2000][:50]
    edited = Candidate.from_dict(answers[0].to_dict())
    edited.id, edited.score, edited.prompt = "stackexchange/x/1", (answers[0].score or 0) - 1, "Another title?"
    words = edited.response.split(" ")
    for i in range(0, len(words), 60):
        words[i] = "zzz"
    edited.response = " ".join(words)
    result = Dedup().run(answers + [edited])
    assert result.decisions[edited.id][1] == "near_duplicate"
    assert sum(1 for _, r in result.decisions.values() if r) == 1


def test_copies_of_an_answer_join_one_cluster_with_the_pairwise_reasons(se_dir):
    """Copies whose normalised text equals an earlier one are linked to it alone (not to every earlier copy):
    the clusters and reasons must be those of linking every pair, with exact dedup on and off."""
    (dump,) = discover([se_dir / "matheducators"])
    answers = [c for c in StackExchangeReader().read(dump, ReaderStats(dump.label)) if len(c.response) > 1500][:12]
    copies = []
    for n in range(40):  # every answer 3-4 times: case and spacing changed, the same title for some
        for k, a in enumerate(answers[: 8 + n % 5]):
            c = Candidate.from_dict(a.to_dict())
            c.id, c.score = f"{a.id}-{n}", (a.score or 0) - n % 3
            c.response = (a.response.upper() if n % 2 else a.response) + " " * (n % 3)
            c.prompt = a.prompt if k % 2 else f"{a.prompt} ({n})"
            copies.append(c)
    for exact, reason in ((True, "exact_duplicate"), (False, "near_duplicate")):
        result = Dedup({"exact": exact}).run(answers + copies)
        clusters = {c["keeper"]: c for c in result.clusters}
        assert len(clusters) == len(answers)  # one per answer, each holding all its copies
        for a in answers:
            members = [m for c in result.clusters for m in c["members"] if m["id"].startswith(a.id)]
            assert len({c["keeper"] for c in result.clusters if any(m["id"] == a.id for m in c["members"])}) == 1
            reasons = Counter(m["reason"] for m in members)
            assert reasons[None] == 1 and reasons[reason] == len(members) - 1


def test_test_prompt_pasted_into_a_train_response_is_caught(tmp_path, shared):
    rows = [json.loads(line) for line in (shared / "lima" / "lima_train_slice.jsonl").read_text().splitlines()]
    test_prompt = next(r["conversations"][0] for r in rows[10:] if len(r["conversations"][0].split()) > 20)
    authored = [{"prompt": test_prompt, "split": "test", "id": "held-out"}]
    for i, r in enumerate(rows[:10]):
        response = r["conversations"][1]
        if i == 3:
            response += "\n\nAs someone once asked: " + test_prompt
        authored.append({"prompt": r["conversations"][0] + f" ({i})", "response": response, "split": "train",
                         "id": f"train-{i}"})
    path = tmp_path / "authored.jsonl"
    path.write_text("\n".join(json.dumps(a) for a in authored))
    result = build(load_recipe("lima"), inputs=[path], sources=["authored"], out_dir=tmp_path, quiet=True)
    stage = next(s for s in result.manifest["funnel"]["authored"]["stages"] if s["filter"] == "decontamination")
    assert stage["dropped"] == {"contaminated": 1}
    train_ids = [json.loads(line)["id"] for line in (result.path / "train.jsonl").read_text().splitlines()]
    assert "authored/train-3" not in train_ids and len(train_ids) == 9
    # a user-supplied benchmark file works the same way
    leaked = next(i for i, r in enumerate(rows[:10]) if i != 3 and len(r["conversations"][0].split()) > 15)
    bench = tmp_path / "bench.txt"
    bench.write_text(rows[leaked]["conversations"][0] + "\n")
    again = build(load_recipe("lima"), inputs=[path], sources=["authored"], out_dir=tmp_path, name="b",
                  quiet=True, benchmarks=[bench])
    stage = next(s for s in again.manifest["funnel"]["authored"]["stages"] if s["filter"] == "decontamination")
    assert stage["dropped"] == {"contaminated": 2}


def test_non_english_answer_is_dropped(real_text=None):
    language = lima_filter("stackexchange", "language")
    spanish = Candidate("x", "stackexchange", "d", "p", (
        "La cerveza se elabora con agua, malta, lúpulo y levadura. Durante la fermentación, la levadura convierte "
        "los azúcares del mosto en alcohol y dióxido de carbono. ```print('hello world')```"))
    value, reason = language(spanish)
    assert value["lang"] == "es" and reason == "not_english"
    english = Candidate("x", "stackexchange", "d", "p", "Beer is brewed from water, malt, hops and yeast. "
                        "During fermentation the yeast turns the sugars of the wort into alcohol.")
    assert language(english)[1] is None and language(english)[0]["lang"] == "en"
    assert language(english) == language(english)  # seeded: the same answer every time
    fast = build_filter("language", {"detector": "py3langid"}, 0)
    assert fast(spanish)[1] == "not_english" and fast(english)[1] is None


def test_email_in_a_real_answer_is_replaced(se_dir):
    (dump,) = discover([BEER := se_dir / "beer.stackexchange.com_2020" / "beer.stackexchange.com.7z"])
    answer = next(c for c in StackExchangeReader().read(dump, ReaderStats(dump.label))
                  if c.id == "stackexchange/beer.stackexchange.com/5182")
    lima_filter("stackexchange", "clean")(answer)
    assert "info@gullliquorstore.com" in answer.response
    value, reason = lima_filter("stackexchange", "pii")(answer)
    assert reason is None and value == {"email": 1, "ip": 0, "phone": 1, "user": 0}
    assert "info@gullliquorstore.com" not in answer.response and "E-mail: [EMAIL]" in answer.response
    assert "Phone: [PHONE]" in answer.response


def test_quality_rules_on_real_and_repeated_text(se_dir):
    quality = lima_filter("stackexchange", "quality")
    (dump,) = discover([se_dir / "coffee"])
    answers = [c for c in StackExchangeReader().read(dump, ReaderStats(dump.label)) if c.response]
    clean = lima_filter("stackexchange", "clean")
    verdicts = Counter()
    for c in answers:
        clean(c)
        verdicts[quality(c)[1]] += 1
    assert verdicts[None] / len(answers) > 0.95  # real answers pass
    spammy = Candidate("x", "s", "d", "p", "Buy the best coffee beans now.\n" * 30)
    assert quality(spammy)[1] == "repeated_lines"
    code_heavy = Candidate("x", "s", "d", "p", "Run this:\n\n```\n" + "print('x')\n" * 40 + "```\n\nThen check.")
    assert quality(code_heavy)[1] is None  # code is not judged as prose
    leftover = Candidate("x", "s", "d", "p", "Some text &nbsp; with <div class='x'>markup</div> left over.")
    assert quality(leftover)[1] == "leftover_markup"
    assert quality_measures("word " * 100)["top_2gram"] == 1.0


def test_cached_language_model_decides_as_py3langid(tmp_path, monkeypatch, se_dir):
    """The decompressed model kept in the user cache gives py3langid's own scores on real answers; an unwritable
    cache falls back to py3langid's loader."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from lima_data.filters import language as lang

    texts = [m.group(1) for m in re.finditer(r' Body="([^"]{200,2000})"',
                                             (se_dir / "coffee" / "Posts.xml").read_text()[:400_000])][:40]
    texts += ["Das ist ein deutscher Satz über Kaffee.", "La cerveza se elabora con agua, malta y lúpulo."]
    own = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    monkeypatch.setenv("LIMA_DATA_CACHE", str(tmp_path / "cache"))
    lang._py3langid.cache_clear()
    try:
        cached = lang._py3langid()
        assert len(list((tmp_path / "cache").glob("py3langid-*/*.npy"))) == 6
        assert [cached.classify(t) for t in texts] == [own.classify(t) for t in texts]
        lang._py3langid.cache_clear()
        assert lang._py3langid().classify(texts[0]) == own.classify(texts[0])  # read back from the cache
        (tmp_path / "blocked").write_text("a file, not a folder")
        monkeypatch.setenv("LIMA_DATA_CACHE", str(tmp_path / "blocked"))
        assert lang._cached_model_arrays(Path(lang.__file__)) is None
        lang._py3langid.cache_clear()
        assert lang._py3langid().classify(texts[-1]) == own.classify(texts[-1])
    finally:
        lang._py3langid.cache_clear()
