"""Hugging Face export of a training checkpoint (bf16 safetensors, with the tokenizer, EOT and the chat template)
and sampling from an export with LIMA's settings (nucleus p 0.9, temperature 0.7, repetition penalty 1.2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from . import data as D
from .config import TrainConfig
from .fsdp import full_state_dict, parameters_on_meta


def export_checkpoint(model, tokenizer, eot_id: int, out: Path, config: TrainConfig, rank: int) -> Path | None:
    """Gather the sharded model to rank 0 and write it to ``out`` as a Hugging Face model (bf16 safetensors) with
    its tokenizer and a generation config that stops at EOT and samples with LIMA's settings. Collective: every
    rank calls it; rank 0 returns the folder, the others ``None``. Written to a temporary folder, then renamed."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    state = full_state_dict(model)
    if rank != 0:
        return None
    with parameters_on_meta():
        hf = AutoModelForCausalLM.from_config(model.config, dtype=torch.float32)
    hf.load_state_dict(state, assign=True, strict=False)
    hf = hf.to(torch.bfloat16)
    hf.config.use_cache = True
    hf.generation_config = GenerationConfig(
        do_sample=True, top_p=config.top_p, temperature=config.temperature,
        repetition_penalty=config.repetition_penalty, max_new_tokens=config.max_new_tokens,
        eos_token_id=[eot_id] + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []),
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    hf.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def prompt_ids(messages: list[dict[str, str]], tokenizer, eot_id: int) -> list[int]:
    """Token ids of a conversation up to and including its first user turn, ready for the reply."""
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    return D.encode(messages[: first_user + 1], tokenizer, eot_id, max_length=10**9)["input_ids"]


@torch.no_grad()
def generate_rows(checkpoint: str | Path, rows: list[dict[str, Any]], config: TrainConfig, device="cpu",
                  seed: int | None = None) -> list[dict[str, Any]]:
    """Sample a reply to each row's first user turn from an exported checkpoint, with LIMA's settings (taken
    from ``config``: top_p, temperature, repetition_penalty, max_new_tokens), stopping at EOT."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=dtype).to(device).eval()
    eot_id = tokenizer.convert_tokens_to_ids(D.EOT)
    torch.manual_seed(config.seed if seed is None else seed)
    out = []
    for row in rows:
        ids = torch.tensor([prompt_ids(row["messages"], tokenizer, eot_id)], device=device)
        generated = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_p=config.top_p,
                                   temperature=config.temperature, repetition_penalty=config.repetition_penalty,
                                   max_new_tokens=config.max_new_tokens, eos_token_id=eot_id,
                                   pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(generated[0, ids.shape[1]:], skip_special_tokens=True)
        out.append({"id": row.get("id"), "prompt": row["messages"][0]["content"] if row["messages"] else "",
                    "generation": text})
    return out


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
