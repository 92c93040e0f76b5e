"""``--plan`` against measured memory on CPU (issue 16, item 5): a small Llama (hidden 512, 8 layers, MLP 1,376,
vocabulary 32,000; ~60M parameters) saved with weights, trained for a few steps with 1 and 2 gloo ranks in fp32
(bf16=False: CPU autocast differs from CUDA's), micro-batch 1, 512 tokens; rank 0's peak RSS (``ru_maxrss``, in
metrics.jsonl as ``peak_memory_gib``) against the plan with the CUDA overhead replaced by the process's RSS before
the model is built (libraries, tokenizer, data).

    PYTHONPATH=$PWD python benchmarks/bench_plan_cpu.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.train_helpers import manifest_texts, run_ranks, train_tokenizer  # noqa: E402


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from lima_data.build import build
    from lima_data.recipe import load_recipe
    from lima_data.train.plan import plan

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = build(load_recipe("sample"), out_dir=root / "manifests", quiet=True).path
        tokenizer = train_tokenizer(manifest_texts(manifest), root / "tokenizer", vocab_size=2000)
        config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                             num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024,
                             bos_token_id=1, eos_token_id=2)
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(config).save_pretrained(str(root / "model"))
        for world in (1, 2):
            out = root / f"run{world}"
            run_ranks(world, dict(manifest=str(manifest), model=str(root / "model"), tokenizer=str(tokenizer),
                                  output=str(out), epochs=1, global_batch=4, micro_batch=1, max_length=512,
                                  max_steps=3, bf16=False, export_epochs=[], dev_generations=0, log_every=0),
                      root / f"run{world}.json")
            records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            measured = max(r["peak_memory_gib"] for r in records if "peak_memory_gib" in r)
            baseline = next(r["baseline_rss_gib"] for r in records if r.get("event") == "start")
            estimate = plan(str(root / "model"), world, 1000, micro_batch=1, max_length=512, global_batch=4,
                            overhead_gib=baseline, bf16=False)
            print(json.dumps({"world": world, "measured_peak_rss_gib": measured, "plan_gib": estimate["total_gib"],
                              "error": round(estimate["total_gib"] / measured - 1, 3),
                              "parts_gib": estimate["parts_gib"]}), flush=True)


if __name__ == "__main__":
    main()
