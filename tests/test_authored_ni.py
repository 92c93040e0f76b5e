"""Authored JSONL (messages, pairs, LIMA's GAIR layout) and Super-NaturalInstructions task files."""

from __future__ import annotations

import json

import pytest

from lima_data.candidate import to_example
from lima_data.filters import build_filter
from lima_data.recipe import SelectionSpec, load_recipe
from lima_data.selection import assign_splits, select
from lima_data.sources import ReaderStats
from lima_data.sources.base import discover
from lima_data.sources.jsonl import AuthoredSource
from lima_data.sources.natural_instructions import NaturalInstructionsSource


def read(source, paths):
    found, _ = discover(paths, [source])
    stats = {}
    candidates = list(source.read(found[source.name], lambda s: stats.setdefault(s, ReaderStats(s.label)),
                                  lambda s: None))
    return candidates, list(stats.values())


def test_lima_gair_layout(shared):
    """LIMA's release (GAIR layout): the authors' rows are read, the community picks skipped and counted."""
    candidates, (stats,) = read(AuthoredSource(), [shared / "lima" / "lima_train_slice.jsonl"])
    assert len(candidates) == 10 and stats.malformed == 0 and stats.rows == 30
    assert {c.domain for c in candidates} == {"authors", "multi_turn"}
    assert {k: v for k, v in stats.counts.items() if k.startswith("skipped_")} == {
        "skipped_stackexchange": 5, "skipped_wikihow": 5, "skipped_nlp": 5, "skipped_writingprompts": 5}
    first = candidates[0]
    assert first.prompt == "Create csv file with python" and first.response
    multi = [c for c in candidates if c.meta["turns"] > 2]
    assert len(multi) == 5 and all(c.domain == "multi_turn" for c in multi)
    row = to_example(multi[0])
    assert len(row["messages"]) == multi[0].meta["turns"] > 2
    assert [m["role"] for m in row["messages"][:3]] == ["user", "assistant", "user"]
    assert to_example(multi[0], prompt_only=True)["messages"] == row["messages"][:1]
    # a recipe can read more labels as authored
    more, _ = read(AuthoredSource({"authored_labels": ["authors", "multi_turn", "nlp"]}),
                   [shared / "lima" / "lima_train_slice.jsonl"])
    assert len(more) == 15


def _slice(shared):
    return [json.loads(line) for line in (shared / "lima" / "lima_train_slice.jsonl").read_text().splitlines()]


def test_lima_test_jsonl_prompts_go_to_test(tmp_path, shared):
    """GAIR's test.jsonl layout: one user turn per row; authored prompts become test rows."""
    rows = [{"conversations": r["conversations"][:1], "source": r["source"]} for r in _slice(shared)]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    candidates, (stats,) = read(AuthoredSource(), [path])
    assert len(candidates) == 10 and {c.meta["split"] for c in candidates} == {"test"}
    assert all(c.response == "" for c in candidates) and stats.counts["skipped_nlp"] == 5


def test_llama_factory_lima_json_and_sharegpt(tmp_path, shared):
    """LLaMA-Factory's lima.json (one JSON array, Alpaca columns, no labels) and its ShareGPT layout."""
    alpaca = []
    for r in _slice(shared):
        turns = r["conversations"]
        pairs = [turns[i:i + 2] for i in range(0, len(turns) - 2, 2)]
        alpaca.append({"instruction": turns[-2], "input": "", "output": turns[-1], "history": pairs})
    path = tmp_path / "lima.json"
    path.write_text(json.dumps(alpaca, indent=2))
    candidates, (stats,) = read(AuthoredSource(), [path])
    assert stats.counts["skipped_unlabelled"] == 25  # single-turn rows carry no label: cannot be told apart
    assert len(candidates) == 5 and all(c.meta["turns"] > 2 for c in candidates)
    multi = next(r for r in _slice(shared) if r["source"] == "multi_turn")
    got = next(c for c in candidates if c.prompt == multi["conversations"][0])
    assert [m["content"] for m in got.meta["messages"]] == multi["conversations"]
    sharegpt = tmp_path / "lima_sharegpt.jsonl"
    sharegpt.write_text("".join(json.dumps({"conversations": [
        {"from": "human" if i % 2 == 0 else "gpt", "value": t} for i, t in enumerate(r["conversations"])],
        "source": r["source"]}) + "\n" for r in _slice(shared)))
    candidates, (stats,) = read(AuthoredSource(), [sharegpt])
    assert len(candidates) == 10 and stats.malformed == 0


def test_build_with_lima_release_as_input(tmp_path, shared):
    from lima_data.build import build

    result = build(load_recipe("lima"), inputs=[shared / "lima" / "lima_train_slice.jsonl"], sources=["authored"],
                   out_dir=tmp_path, quiet=True)
    rows = [json.loads(line) for file in result.path.glob("*.jsonl")  # a split with no rows has no file
            for line in file.read_text().splitlines()]
    assert len(rows) == 10 and {r["domain"] for r in rows} == {"authors", "multi_turn"}
    (reader,) = result.manifest["readers"]
    assert reader["counts"]["skipped_stackexchange"] == 5 and reader["rows"] == 30
    assert any("20 row(s) skipped, by label: nlp 5, stackexchange 5, wikihow 5, writingprompts 5" in w
               for w in result.warnings)
    # the skipped community picks still serve as decontamination material (--benchmark reads every user turn)
    from lima_data.filters.decontaminate import benchmark_prompts

    prompts = benchmark_prompts(shared / "lima" / "lima_train_slice.jsonl")
    assert any(p.startswith("Can brain cells move?") for p in prompts) and len(prompts) >= 30


def test_messages_and_pairs_layouts_with_splits(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                      {"role": "assistant", "content": "Hello."}], "split": "dev", "id": "greet"},
        {"prompt": "Name a prime.", "response": "Seven."},
        {"prompt": "Write a haiku about rain."},
        {"messages": [{"role": "bot", "content": "x"}]},
        {"prompt": "Where?", "response": "Here.", "split": "validation"},
        {"id": "greet", "prompt": "dup", "response": "dup"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    candidates, (stats,) = read(AuthoredSource(), [path])
    assert [c.id for c in candidates] == ["authored/greet", "authored/mine/2", "authored/mine/3"]
    assert stats.malformed == 3
    assert [e["line"] for e in stats.errors] == [4, 5, 6]
    assert "messages[0] must be" in stats.errors[0]["error"] and "duplicate id" in stats.errors[2]["error"]
    greet = to_example(candidates[0])
    assert greet["messages"][0] == {"role": "system", "content": "Be brief."} and "messages" not in greet["meta"]
    selection = SelectionSpec(method="split", quotas={"train": 1, "dev": 1, "test": 1}, prompt_only=["test"])
    assign_splits(candidates, selection, seed=0)
    picks = select("authored", candidates, selection, seed=0)
    assert {g.group: [c.id for c in g.selected] for g in picks}["dev"] == ["authored/greet"]
    assert sorted(c.id for g in picks for c in g.selected) == sorted(c.id for c in candidates)


def _task(name, categories, instances, language="English"):
    return {
        "Contributors": ["someone"],
        "Source": ["dataset"],
        "Categories": categories,
        "Definition": [f"In this task, you are given a paragraph. {name}"],
        "Positive Examples": [{"input": "a", "output": "b", "explanation": "c"}],
        "Negative Examples": [],
        "Input_language": [language],
        "Output_language": [language],
        "Instruction_language": ["English"],
        "Domains": ["News"],
        "Instances": [{"id": f"{name}-{i}", "input": f"Paragraph {i}.", "output": [f"Summary {i}.", f"Alt {i}."]}
                      for i in range(instances)],
    }


@pytest.fixture
def tasks(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "task001_summarize_news.json").write_text(json.dumps(_task("Summarize it.", ["Summarization"], 40)))
    (folder / "task002_classify.json").write_text(json.dumps(_task("Classify it.", ["Text Categorization"], 5)))
    (folder / "task003_translate.json").write_text(json.dumps(_task("Paraphrase it.", ["Paraphrasing"], 5, "French")))
    (folder / "task004_broken.json").write_text('{"Definition": ["x"], "Instances": [')
    (folder / "README.md").write_text("not a task")
    return folder


def test_natural_instructions_tasks(tasks):
    candidates, stats = read(NaturalInstructionsSource(seed=0), [tasks])
    assert [c.id for c in candidates] == ["natural_instructions/task001_summarize_news",
                                          "natural_instructions/task002_classify",
                                          "natural_instructions/task003_translate"]
    broken = next(s for s in stats if s.shard.endswith("task004_broken.json"))
    assert broken.malformed == 1 and "bad JSON" in broken.errors[0]["error"]
    news = candidates[0]
    assert news.prompt.startswith("In this task, you are given a paragraph. Summarize it.\n\nParagraph ")
    i = news.meta["instance_id"].split("-")[-1]
    assert news.response in (f"Summary {i}.", f"Alt {i}.") and news.prompt.endswith(f"Paragraph {i}.")
    again, _ = read(NaturalInstructionsSource(seed=0), [tasks])
    assert again[0].meta["instance_id"] == news.meta["instance_id"]
    picks = {read(NaturalInstructionsSource(seed=s), [tasks])[0][0].meta["instance_id"] for s in range(8)}
    assert len(picks) > 1  # the instance is a seeded random one

    spec = load_recipe("lima").sources["natural_instructions"]
    chain = [build_filter(n, spec.filters.get(n, {}), 0) for n in spec.chain]
    outcomes = []
    for c in candidates:
        outcome = None
        for flt in chain:
            _, reason = flt(c)
            if reason:
                outcome = reason
                break
        outcomes.append(outcome)
    assert outcomes == [None, "not_generation", "not_english"]


def test_a_row_that_names_a_full_split_is_never_moved_to_train():
    """Rows an author marked for test stay out of train when the test quota is full (review finding)."""
    from lima_data.candidate import Candidate
    from lima_data.recipe import SelectionSpec
    from lima_data.selection import assign_splits

    rows = [Candidate(f"authored/a{i}", "authored", "", f"p{i}", "r", meta={"split": "test"}) for i in range(5)]
    rows += [Candidate(f"authored/b{i}", "authored", "", f"q{i}", "r", meta={}) for i in range(4)]
    overflow = assign_splits(rows, SelectionSpec(method="split", quotas={"train": 10, "dev": 0, "test": 3}), 0)
    groups = {c.id: c.meta["group"] for c in rows}
    assert overflow == 2
    assert [groups[f"authored/a{i}"] for i in range(5)] == ["test", "test", "test", "", ""]
    assert all(groups[f"authored/b{i}"] == "train" for i in range(4))
