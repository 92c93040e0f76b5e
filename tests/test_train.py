"""The trainer on CPU: gloo, two processes, a tiny LlamaForCausalLM built from a LlamaConfig and a BPE tokenizer
trained in the test, on a manifest built from the real bundled sample."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from lima_data.build import build  # noqa: E402
from lima_data.recipe import load_recipe  # noqa: E402
from lima_data.train import data as D  # noqa: E402
from lima_data.train.model import add_residual_dropout, decoder_layers, dropout_schedule, resize_for_tokenizer  # noqa: E402
from lima_data.train.plan import plan  # noqa: E402

from .train_helpers import manifest_texts, run_ranks, tiny_llama, train_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    manifest = build(load_recipe("sample"), out_dir=root / "manifests", quiet=True).path
    tokenizer = train_tokenizer(manifest_texts(manifest), root / "tokenizer")
    model = tiny_llama(root / "model", layers=3)
    return {"manifest": manifest, "tokenizer": tokenizer, "model": model, "root": root}


def base_config(assets, output, **overrides):
    config = dict(manifest=str(assets["manifest"]), model=str(assets["model"]), tokenizer=str(assets["tokenizer"]),
                  output=str(output), epochs=1, lr=2e-3, final_lr=2e-4, global_batch=4, micro_batch=1,
                  max_length=192, export_epochs=[], dev_generations=0, keep_checkpoints=3, from_scratch=True)
    config.update(overrides)
    return config


def tokenizer(assets):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(assets["tokenizer"]))
    return tok, *D.prepare_tokenizer(tok)


def test_eot_is_a_label_and_prompt_tokens_are_not(assets):
    tok, eot, pad = tokenizer(assets)
    assert pad not in (eot, tok.eos_token_id) and eot != tok.eos_token_id
    row = json.loads((assets["manifest"] / "train.jsonl").read_text().splitlines()[0])
    enc = D.encode(row["messages"], tok, eot, max_length=10_000)
    user = tok.encode(row["messages"][0]["content"], add_special_tokens=False)
    assistant = tok.encode(row["messages"][1]["content"], add_special_tokens=False)
    assert enc["input_ids"] == [tok.bos_token_id] + user + [eot] + assistant + [eot]
    assert enc["labels"] == [D.IGNORE] * (2 + len(user)) + assistant + [eot]
    trimmed = D.encode(row["messages"], tok, eot, max_length=10)
    assert len(trimmed["input_ids"]) == 10
    batch = D.collate([enc, trimmed], pad)
    assert batch["input_ids"].shape == (2, len(enc["input_ids"]))
    assert batch["labels"][1, 10:].eq(D.IGNORE).all() and batch["input_ids"][1, 10:].eq(pad).all()


def test_batches_do_not_depend_on_world_size():
    steps = D.global_batches(10, 4, seed=0, epoch=0)
    assert [len(b) for b in steps] == [4, 4, 2] and sorted(sum(steps, [])) == list(range(10))
    assert D.global_batches(10, 4, seed=0, epoch=1) != steps
    last = steps[-1]
    two = [D.rank_micro_batches(last, r, 2, 1) for r in range(2)]
    assert two == [[[last[0]]], [[last[1]]]]
    three = [D.rank_micro_batches(last, r, 3, 1) for r in range(3)]
    assert three[2] == [[]]  # a rank with nothing still runs one (empty) pass


def test_vocabulary_resize_and_dropout_schedule(assets):
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok, eot, pad = tokenizer(assets)
    model = AutoModelForCausalLM.from_config(LlamaConfig.from_pretrained(str(assets["model"])))
    old = model.get_input_embeddings().weight[:400].detach().clone()
    resize_for_tokenizer(model, len(tok))
    weight = model.get_input_embeddings().weight
    assert weight.shape[0] % 64 == 0 and weight.shape[0] >= len(tok)
    assert torch.allclose(weight[eot], old.mean(0), atol=1e-6) and torch.allclose(weight[pad], old.mean(0), atol=1e-6)
    assert torch.equal(weight[:400], old)
    assert dropout_schedule(4, 0.3) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    rates = add_residual_dropout(model, 0.3)
    assert rates == pytest.approx([0.0, 0.15, 0.3])
    assert [layer.residual_dropout for layer in decoder_layers(model)] == rates
    ids = torch.tensor([tok.encode("How to grill fish?")])
    model.eval()
    assert torch.equal(model(ids).logits, model(ids).logits)  # no dropout outside training
    model.train()
    assert not torch.equal(model(ids).logits, model(ids).logits)


def test_two_ranks_match_one_process(assets, tmp_path):
    config = base_config(assets, tmp_path / "one", bf16=False, residual_dropout=0.0, max_steps=3,
                         save_final_state=True)
    one = run_ranks(1, config, tmp_path / "one.json")
    config["output"] = str(tmp_path / "two")
    two = run_ranks(2, config, tmp_path / "two.json")
    assert one["steps"] == two["steps"] == 3
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    a = torch.load(tmp_path / "one" / "final_state.pt")
    b = torch.load(tmp_path / "two" / "final_state.pt")
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert one["losses"][-1] < one["losses"][0]


def test_resume_gives_the_uninterrupted_next_step_and_export_generates(assets, tmp_path):
    full = run_ranks(2, base_config(assets, tmp_path / "full", save_every_steps=2, export_epochs=[1],
                                    dev_generations=1, max_new_tokens=6), tmp_path / "full.json")
    assert full["steps"] >= 4
    part = run_ranks(2, base_config(assets, tmp_path / "part", save_every_steps=2, max_steps=2),
                     tmp_path / "part.json")
    assert part["losses"] == pytest.approx(full["losses"][:2], abs=1e-6)
    shutil.copytree(tmp_path / "part" / "checkpoints", tmp_path / "single" / "checkpoints")
    resumed = run_ranks(2, base_config(assets, tmp_path / "part", save_every_steps=2, resume=True),
                        tmp_path / "resumed.json")
    assert resumed["losses"][0] == pytest.approx(full["losses"][2], abs=1e-6)  # dropout RNG restored too
    assert resumed["steps"] == full["steps"]
    # resuming on another number of ranks: one process picks up the two-rank checkpoint of step 2
    single = run_ranks(1, base_config(assets, tmp_path / "single", resume=True, max_steps=3),
                       tmp_path / "single.json")
    assert single["steps"] == 3 and len(single["losses"]) == 1
    # the exported epoch loads with from_pretrained and generates
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (export,) = full["exported"]
    model = AutoModelForCausalLM.from_pretrained(export)
    tok = AutoTokenizer.from_pretrained(export)
    assert model.dtype == torch.bfloat16 and D.EOT in tok.get_vocab()
    assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False).endswith(D.EOT)
    ids = tok("How to grill fish?", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    generations = (tmp_path / "full" / "generations-epoch-01.jsonl").read_text().splitlines()
    assert len(generations) == 1 and "generation" in json.loads(generations[0])
    metrics = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    step = next(m for m in metrics if m.get("step") == 1 and "loss" in m)
    assert {"loss", "lr", "grad_norm", "tokens_per_s_per_gpu", "peak_memory_gib"} <= set(step)
    assert step["lr"] == pytest.approx(2e-3)
    assert any(m.get("event") == "epoch" and m["dev_loss"] is not None for m in metrics)


@pytest.mark.parametrize("model, gpus, fits", [("llama-7b", 8, True), ("llama-13b", 8, True),
                                               ("llama-33b", 8, True), ("llama-65b", 8, False),
                                               ("llama-65b", 16, True)])
def test_plan(model, gpus, fits):
    estimate = plan(model, gpus, 80)
    params = estimate["parameters"]
    # hand-computed: 16 bytes per parameter (fp32 weights, fp32 gradients, two fp32 AdamW moments) over the GPUs
    sharded = sum(v for k, v in estimate["parts_gib"].items() if k != "logits_fp32" and k.endswith("fp32"))
    assert sharded == pytest.approx(16 * params / gpus / 2**30, rel=1e-3)
    assert estimate["fits"] is fits
    assert {"llama-7b": 6.7e9, "llama-13b": 13.0e9, "llama-33b": 32.5e9, "llama-65b": 65.2e9}[model] == \
        pytest.approx(params, rel=0.01)


def test_plan_cli_refuses_before_loading_anything():
    from click.testing import CliRunner

    from lima_data.cli import main

    result = CliRunner().invoke(main, ["train", "--plan", "--model", "llama-65b", "--nproc-per-node", "8",
                                       "--gpu-memory", "80"])
    assert result.exit_code == 1 and "does NOT fit: needs at least 16 GPUs" in result.stdout
    result = CliRunner().invoke(main, ["train", "--model", "llama-65b", "--nproc-per-node", "8", "--gpu-memory",
                                       "80", "--manifest", "x", "--output", "y"])
    assert result.exit_code == 1 and "does not fit in GPU memory" in result.stderr
