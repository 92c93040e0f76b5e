"""Peak host memory (RSS) of each trainer rank while loading a pretrained model into FSDP and while exporting it,
on CPU with gloo (issue 16, item 2).

    # once: a ~0.5B Llama (hidden 1280, 20 layers, MLP 3456, vocab 32000) saved as bf16 safetensors
    PYTHONPATH=$PWD python benchmarks/bench_train_memory.py --make /tmp/bench-llama-0.5b
    # the trainer in this tree, two ranks
    PYTHONPATH=$PWD python benchmarks/bench_train_memory.py /tmp/bench-llama-0.5b --world 2
    PYTHONPATH=$PWD python benchmarks/bench_train_memory.py /tmp/bench-llama-0.5b --world 2 --shard-mb 256
    # the same on another tree (e.g. an older commit unpacked with `git archive COMMIT lima_data | tar -x -C DIR`)
    PYTHONPATH=DIR python benchmarks/bench_train_memory.py /tmp/bench-llama-0.5b --world 2

Each rank resets its peak-RSS counter (``/proc/self/clear_refs``) between phases and reads ``VmHWM``, so the two
phases are measured apart; the baseline is the RSS after imports and the process group, before the model. Prints one
JSON line per rank: baseline, load peak, export peak (GiB), the model's parameters and the largest tensor (GiB in
fp32). Works with the current trainer (streamed load, export tensor by tensor) and the first version (rank 0 reads
the whole model, gathers the whole state for the export).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

GIB = 2**30


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def make_model(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    config = LlamaConfig(vocab_size=32000, hidden_size=1280, intermediate_size=3456, num_hidden_layers=20,
                         num_attention_heads=20, num_key_value_heads=20, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(str(folder), safe_serialization=True, max_shard_size="400MB")
    # a word-level tokenizer as large as the model's vocabulary, so both trainer versions resize alike (EOT, pad)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": 3 + i for i in range(config.vocab_size - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(folder))
    print(f"{folder}: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B parameters")


def worker(rank: int, world: int, port: int, model: str, out: str, shard_bytes: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    from torch.distributed.device_mesh import init_device_mesh

    from lima_data.train import data as D
    from lima_data.train import trainer as T
    from lima_data.train.config import TrainConfig

    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (world,))
    fields = TrainConfig.__dataclass_fields__
    config = TrainConfig(model=model, output=out, **({"attn_implementation": "sdpa"} if "from_scratch" in fields
                                                     else {}))
    tokenizer = T.load_tokenizer(config)
    eot_id, _ = D.prepare_tokenizer(tokenizer)
    device = torch.device("cpu")
    dist.barrier()
    baseline = _status("VmRSS")
    _reset_peak()
    model_, params, _ = T.build_model(config, len(tokenizer), rank, mesh, device)
    dist.barrier()
    load_peak = _status("VmHWM")
    largest = max(p.numel() for p in model_.parameters()) * 4
    _reset_peak()
    if "from_scratch" in fields:  # this tree: export tensor by tensor
        from lima_data.train.weights import export_model

        template = Path(out) / "hf-template"
        if rank == 0:
            T._write_template(model_, tokenizer, eot_id, config, template)
        dist.barrier()
        export_model(model_, Path(out) / "export", template, {"step": 0}, rank, shard_bytes=shard_bytes)
    else:  # the first version
        from lima_data.train.export import export_checkpoint

        export_checkpoint(model_, tokenizer, eot_id, Path(out) / "export", config, rank)
    dist.barrier()
    export_peak = _status("VmHWM")
    print(json.dumps({"rank": rank, "world": world, "parameters": params, "largest_tensor_fp32_gib":
                      round(largest / GIB, 3), "baseline_gib": round(baseline / GIB, 3),
                      "load_peak_gib": round(load_peak / GIB, 3), "export_peak_gib": round(export_peak / GIB, 3),
                      "load_above_baseline_gib": round((load_peak - baseline) / GIB, 3),
                      "export_above_baseline_gib": round((export_peak - baseline) / GIB, 3)}), flush=True)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--make", action="store_true", help="write the benchmark model to MODEL and stop")
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--shard-mb", type=int, default=5 * 1024,
                        help="export shard size (this tree only; the trainer's default is 5 GiB)")
    args = parser.parse_args()
    if args.make:
        make_model(args.model)
        return
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(worker, args=(args.world, port, str(args.model), out, args.shard_mb * 2**20), nprocs=args.world, join=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
