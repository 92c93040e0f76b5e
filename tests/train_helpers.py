"""Tiny models and tokenizers for trainer tests: a Llama built from a LlamaConfig and a BPE tokenizer trained in the
test with the tokenizers library (no hub, no network)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = 400) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(str(folder))
    return folder


def tiny_llama(folder: Path, vocab_size: int = 400, layers: int = 2) -> Path:
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                bos_token_id=1, eos_token_id=2).save_pretrained(str(folder))
    return folder


def manifest_texts(manifest: Path) -> list[str]:
    texts = []
    for split in ("train", "dev", "test"):
        path = manifest / f"{split}.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                texts.extend(m["content"] for m in json.loads(line)["messages"])
    return texts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_worker(rank: int, world: int, port: int, config: dict, out: str) -> None:
    """mp.spawn target: join a gloo group on localhost and train with ``config``; write the summary."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    from lima_data.train.config import TrainConfig
    from lima_data.train.trainer import train

    summary = train(TrainConfig.load(**config))
    if rank == 0:
        Path(out).write_text(json.dumps(summary))
    dist.barrier()
    dist.destroy_process_group()


def run_ranks(world: int, config: dict, out: Path) -> dict:
    import torch.multiprocessing as mp

    mp.spawn(spawn_worker, args=(world, free_port(), config, str(out)), nprocs=world, join=True)
    return json.loads(out.read_text())


def tiny_llama_weights(folder: Path, vocab_size: int = 400, layers: int = 2, seed: int = 1) -> Path:
    """A tiny Llama with (seeded random) weights saved as safetensors: a stand-in for a pretrained model."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tiny_llama(folder, vocab_size, layers)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(LlamaConfig.from_pretrained(str(folder)))
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def put_in_hf_cache(folder: Path, cache: Path, repo_id: str, extra: Path | None = None) -> Path:
    """Lay ``folder``'s files (and ``extra``'s) out as the Hugging Face hub cache does for ``repo_id`` at branch
    main (``models--org--name/refs/main`` -> ``snapshots/<commit>/``), so offline loading finds them."""
    import shutil

    storage = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = storage / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for source in (folder, extra):
        for file in (source.iterdir() if source else []):
            shutil.copy2(file, snapshot / file.name)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)
    return snapshot
