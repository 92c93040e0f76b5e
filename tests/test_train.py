"""The trainer on CPU: gloo, two processes, a tiny LlamaForCausalLM built from a LlamaConfig and a BPE tokenizer
trained in the test, on a manifest built from the real bundled sample."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: A gloo worker process very rarely aborts under a loaded machine ("terminate called without an active exception",
#: seen once in six full CI-style runs, in the resume-then-redo-export step; never when the test runs alone): such a
#: test is run again, only for that failure (a wrong value still fails at once). The cause is not found yet.
pytestmark = pytest.mark.flaky(reruns=2, only_rerun=["ProcessExitedException", "terminated with signal"])

from lima_data.build import build  # noqa: E402
from lima_data.recipe import load_recipe  # noqa: E402
from lima_data.train import data as D  # noqa: E402
from lima_data.train.model import add_residual_dropout, decoder_layers, dropout_schedule, resize_for_tokenizer  # noqa: E402
from lima_data.train.plan import plan  # noqa: E402

from .train_helpers import manifest_texts, put_in_hf_cache, run_ranks, tiny_llama, tiny_llama_weights, train_tokenizer  # noqa: E402


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
    assert export.endswith("epoch-01") and not (tmp_path / "full" / "export" / "final").exists()
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
    # a kill during the epoch-end export: the epoch's checkpoint is there, its export is not; resume redoes it
    export_dir = tmp_path / "full" / "export" / "epoch-01"
    export_dir.rename(export_dir.with_name("epoch-01.partial"))
    redo = run_ranks(2, base_config(assets, tmp_path / "full", save_every_steps=2, export_epochs=[1], resume=True),
                     tmp_path / "redo.json")
    assert redo["exported"] == [str(export_dir)] and redo["losses"] == [] and redo["steps"] == full["steps"]
    assert not export_dir.with_name("epoch-01.partial").exists()
    # any complete checkpoint converts offline (no process group) to the same export
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from lima_data.cli import main

    result = CliRunner().invoke(main, ["convert", str(tmp_path / "full"), "-o", str(tmp_path / "converted")])
    assert result.exit_code == 0, result.output
    converted, exported = load_file(tmp_path / "converted" / "model.safetensors"), load_file(export_dir / "model.safetensors")
    assert converted.keys() == exported.keys() and all(torch.equal(converted[k], exported[k]) for k in exported)
    assert AutoModelForCausalLM.from_pretrained(str(tmp_path / "converted")).config.vocab_size == model.config.vocab_size


def test_generation_is_batched_and_capped_at_the_context(assets, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from lima_data.train.config import TrainConfig
    from lima_data.train.export import generate_rows

    export = tmp_path / "export"  # an export as the trainer writes it: EOT in the tokenizer and the embeddings
    tok, _, _ = tokenizer(assets)
    model = AutoModelForCausalLM.from_config(LlamaConfig.from_pretrained(str(assets["model"])))
    resize_for_tokenizer(model, len(tok))
    model.save_pretrained(str(export))
    tok.save_pretrained(str(export))
    tok = AutoTokenizer.from_pretrained(str(export))
    rows = [json.loads(line) for line in (assets["manifest"] / "dev.jsonl").read_text().splitlines()][:1]
    long_prompt = " ".join(r["messages"][1]["content"] for r in rows) * 6  # far past the 256 positions
    rows.append({"id": "long", "messages": [{"role": "user", "content": long_prompt}]})
    assert len(tok.encode(long_prompt)) > 256
    config = TrainConfig(max_new_tokens=100_000, generation_batch=2)
    torch.set_num_threads(1)
    generated = generate_rows(export, rows, config, quiet=True)  # one left-padded batch of a short and a long prompt
    assert [g["id"] for g in generated] == [r["id"] for r in rows]
    assert generated[-1]["prompt_tokens"] == 128  # the long prompt keeps its last half-context of tokens
    for g in generated:
        assert 0 < g["new_tokens"] <= 256 - g["prompt_tokens"] and g["generation"]


def test_hub_id_loads_offline_from_the_cache_and_a_model_without_weights_is_an_error(assets, tmp_path,
                                                                                      monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import load_file

    from lima_data.errors import LimaDataError
    from lima_data.train.config import TrainConfig
    from lima_data.train.trainer import model_source

    weights = tiny_llama_weights(tmp_path / "pretrained", layers=2)
    cache = tmp_path / "hf-cache"
    put_in_hf_cache(weights, cache, "test-org/tiny-llama")
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}.items():
        monkeypatch.setenv(key, value)  # for the spawned ranks
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    folder, has_weights = model_source(TrainConfig(model="test-org/tiny-llama"))
    assert has_weights and folder.parents[1].name == "models--test-org--tiny-llama"
    with pytest.raises(LimaDataError, match="no weight files.*--from-scratch"):
        model_source(TrainConfig(model=str(assets["model"])))
    with pytest.raises(LimaDataError, match="test-org/absent: .*not in the Hugging Face cache"):
        model_source(TrainConfig(model="test-org/absent"))
    config = base_config(assets, tmp_path / "hub", model="test-org/tiny-llama", from_scratch=False, max_steps=1,
                         lr=1e-12, final_lr=1e-13, save_final_state=True, bf16=False)
    run_ranks(2, config, tmp_path / "hub.json")
    state = torch.load(tmp_path / "hub" / "final_state.pt")
    original = load_file(weights / "model.safetensors")
    assert set(original) <= set(state)
    for name, value in original.items():  # the saved weights, streamed into the shards (not a random start)
        got = state[name]
        assert torch.allclose(got[: value.shape[0]], value, atol=1e-6), name
        if got.shape[0] > value.shape[0]:  # EOT / pad rows: the mean of the saved rows
            assert torch.allclose(got[value.shape[0]:], value.mean(0).expand_as(got[value.shape[0]:]), atol=1e-6)


def test_modified_manifest_is_refused_unless_allowed(assets, tmp_path):
    from lima_data.train.config import TrainConfig
    from lima_data.train.trainer import verify_manifest

    manifest = tmp_path / "manifest"
    shutil.copytree(assets["manifest"], manifest)
    train = manifest / "train.jsonl"
    train.write_text(train.read_text().replace(" the ", " teh ", 1))
    assert verify_manifest(TrainConfig(manifest=str(assets["manifest"]))) == []
    assert verify_manifest(TrainConfig(manifest=str(manifest))) == [
        f"{train}: sha256 differs from manifest.json (the file was changed after the build)"]
    with pytest.raises(Exception, match="sha256 differs.*--allow-modified-manifest"):
        run_ranks(1, base_config(assets, tmp_path / "refused", manifest=str(manifest), max_steps=1),
                  tmp_path / "refused.json")
    allowed = run_ranks(1, base_config(assets, tmp_path / "allowed", manifest=str(manifest), max_steps=1,
                                       allow_modified_manifest=True), tmp_path / "allowed.json")
    assert allowed["steps"] == 1


def _truncate(checkpoint):
    distcp = sorted(checkpoint.glob("*.distcp"))[0]
    distcp.write_bytes(distcp.read_bytes()[: distcp.stat().st_size // 2])


def test_damaged_checkpoint_falls_back_and_steps_are_not_repeated(assets, tmp_path, capfd):
    from lima_data.train.weights import export_state

    out = tmp_path / "run"
    first = run_ranks(2, base_config(assets, out, save_every_steps=1, max_steps=3), tmp_path / "first.json")
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    assert [c.name for c in checkpoints] == ["step-00000001", "step-00000002", "step-00000003"]
    assert export_state(out / "export" / "final")["step"] == 3  # --max-steps still exports the final state
    with pytest.raises(Exception, match="holds another run's checkpoints/; pass --resume"):
        run_ranks(1, base_config(assets, out, max_steps=1), tmp_path / "fresh.json")
    capfd.readouterr()
    _truncate(checkpoints[-1])
    resumed = run_ranks(2, base_config(assets, out, save_every_steps=1, max_steps=4, resume=True),
                        tmp_path / "resumed.json")
    err = capfd.readouterr().err
    assert f"checkpoint {checkpoints[-1]} is damaged" in err and f"resuming from {checkpoints[-2]} instead" in err
    assert resumed["steps"] == 4 and resumed["losses"][0] == pytest.approx(first["losses"][2], abs=1e-6)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4]
    assert export_state(out / "export" / "final")["step"] == 4
    for checkpoint in (out / "checkpoints").glob("step-*"):
        _truncate(checkpoint)
    with pytest.raises(Exception, match=r"step-00000004: damaged checkpoint \(.*\) and no earlier complete"):
        run_ranks(1, base_config(assets, out, resume=True), tmp_path / "none.json")
    again = run_ranks(1, base_config(assets, out, max_steps=1, overwrite=True), tmp_path / "again.json")
    assert again["steps"] == 1 and [c.name for c in (out / "checkpoints").iterdir()] == ["step-00000001"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if '"loss"' in line] == [1]


def test_sigterm_saves_a_checkpoint_before_exit(assets, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(base_config(assets, out, epochs=50, log_every=0)))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "lima_data.train.trainer", "--config", str(config)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"loss"' in metrics.read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["interrupted"] == "SIGTERM" and 0 < summary["steps"] < 50 * 10
    checkpoint = out / "checkpoints" / f"step-{summary['steps']:08d}"
    assert (checkpoint / "COMPLETE").exists() and json.loads((checkpoint / "trainer.json").read_text())["step"] == \
        summary["steps"]


def test_batch_rule_peak_flops_and_mfu_parameters():
    from lima_data.train.config import default_global_batch
    from lima_data.train.trainer import PEAK_FLOPS, _flops_per_token

    assert default_global_batch(6.7e9) == default_global_batch(13e9) == 64
    assert default_global_batch(32.5e9) == default_global_batch(65.2e9) == 32
    assert PEAK_FLOPS["NVIDIA H100 80GB HBM3"] > PEAK_FLOPS["NVIDIA H100 PCIe"]
    assert PEAK_FLOPS["NVIDIA A10"] > PEAK_FLOPS["NVIDIA A10G"]
    config = type("C", (), {"num_hidden_layers": 2, "hidden_size": 8})()
    assert _flops_per_token(100, config, 10) == 6 * 100 + 12 * 2 * 8 * 10


@pytest.mark.parametrize("model, gpus, offload, fits", [
    ("llama-7b", 8, False, True), ("llama-13b", 8, False, True), ("llama-33b", 8, False, False),
    ("llama-33b", 16, False, True), ("llama-65b", 16, False, False), ("llama-65b", 32, False, True),
    ("llama-65b", 8, True, True)])
def test_plan(model, gpus, offload, fits):
    estimate = plan(model, gpus, 80, cpu_offload=offload)
    params = estimate["parameters"]
    parts = estimate["parts_gib"]
    # hand-computed: 16 bytes per parameter (fp32 weights, fp32 gradients, two fp32 AdamW moments) over the GPUs,
    # or none of it on the GPU with CPU offload (then on the host: 16 bytes x parameters / GPUs per GPU)
    sharded = parts["master_weights_fp32"] + parts["gradients_fp32"] + parts["adamw_states_fp32"]
    assert sharded == pytest.approx(0 if offload else 16 * params / gpus / 2**30, abs=0.03)
    assert parts["logits"] == pytest.approx(14 * 2048 * 32000 / 2**30, abs=0.01)
    assert estimate["fits"] is fits
    assert estimate["global_batch"] == (64 if params < 30e9 else 32)
    assert {"llama-7b": 6.7e9, "llama-13b": 13.0e9, "llama-33b": 32.5e9, "llama-65b": 65.2e9}[model] == \
        pytest.approx(params, rel=0.01)
    if offload:
        assert estimate["host_per_node_gib"] > 16 * params / 2**30


def test_plan_refuses_gpu_counts_that_do_not_divide_the_batch():
    estimate = plan("llama-7b", 3, 80)  # the memory would do; 64 examples do not split over 3 GPUs
    assert not estimate["fits"] and estimate["problems"] == [
        "the global batch of 64 examples does not split over 3 GPUs x micro-batch 1"]
    assert plan("llama-7b", 4, 80)["fits"] and plan("llama-7b", 3, 80, global_batch=33)["fits"]
    assert plan("llama-7b", 7, 26)["problems"] == [estimate["problems"][0].replace("3", "7")]  # memory fits on 7
    assert plan("llama-7b", 7, 26)["min_gpus"] == 8  # 7 GPUs hold it; the next divisor of 64 is 8


def test_plan_cli_refuses_before_loading_anything():
    from click.testing import CliRunner

    from lima_data.cli import main

    result = CliRunner().invoke(main, ["train", "--plan", "--model", "llama-65b", "--nproc-per-node", "8",
                                       "--gpu-memory", "80"])
    assert result.exit_code == 1 and "does NOT fit: needs at least 32 GPUs" in result.stdout
    result = CliRunner().invoke(main, ["train", "--plan", "--model", "llama-65b", "--nproc-per-node", "8",
                                       "--gpu-memory", "80", "--cpu-offload"])
    assert result.exit_code == 0 and "CPU offload on" in result.stdout and "fits" in result.stdout
    result = CliRunner().invoke(main, ["train", "--model", "llama-65b", "--nproc-per-node", "8", "--gpu-memory",
                                       "80", "--manifest", "x", "--output", "y"])
    assert result.exit_code == 1 and "does not fit in GPU memory" in result.stderr


def test_export_template_leaves_the_training_config_alone(assets, tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    from lima_data.train.config import TrainConfig
    from lima_data.train.trainer import _write_template

    tok, eot, _ = tokenizer(assets)
    model = AutoModelForCausalLM.from_config(LlamaConfig.from_pretrained(str(assets["model"])))
    resize_for_tokenizer(model, len(tok))
    model.config.use_cache = False  # as in training: no KV cache in dev-loss evaluation
    _write_template(model, tok, eot, TrainConfig(), tmp_path / "template")
    assert model.config.use_cache is False
    saved = AutoConfig.from_pretrained(str(tmp_path / "template"))
    assert saved.use_cache is True and saved.vocab_size == model.get_input_embeddings().weight.shape[0]
