"""Sampling from a Hugging Face export with LIMA's settings (nucleus p 0.9, temperature 0.7, repetition penalty 1.2).
The exports themselves are written by :mod:`lima_data.train.weights`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from . import data as D
from .config import TrainConfig


def prompt_ids(messages: list[dict[str, str]], tokenizer, eot_id: int) -> list[int]:
    """Token ids of a conversation up to and including its first user turn, ready for the reply."""
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    return D.encode(messages[: first_user + 1], tokenizer, eot_id, max_length=10**9)["input_ids"]


@torch.no_grad()
def generate_rows(checkpoint: str | Path, rows: list[dict[str, Any]], config: TrainConfig, device="cpu",
                  seed: int | None = None, batch_size: int | None = None,
                  quiet: bool = False) -> list[dict[str, Any]]:
    """Sample a reply to each row's first user turn from an exported checkpoint, with LIMA's settings (taken
    from ``config``: top_p, temperature, repetition_penalty, max_new_tokens), stopping at EOT.

    Prompts go ``batch_size`` (default ``config.generation_batch``) at a time, left-padded, shortest first; each
    batch's ``max_new_tokens`` is capped at the context left (``max_position_embeddings`` minus the batch's longest
    prompt, in tokens), and a prompt longer than the context keeps its last tokens (half the context), so
    generation never runs past the positions the model has. A line per batch on stderr unless ``quiet``.
    Returns ``{"id", "prompt", "generation", "prompt_tokens", "new_tokens"}`` rows in the input order.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=dtype).to(device).eval()
    eot_id = tokenizer.convert_tokens_to_ids(D.EOT)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot_id
    context = getattr(model.config, "max_position_embeddings", None) or 10**9
    torch.manual_seed(config.seed if seed is None else seed)
    prompts = []
    for row in rows:
        ids = prompt_ids(row["messages"], tokenizer, eot_id)
        prompts.append(ids[-(context // 2):] if len(ids) >= context else ids)
    order = sorted(range(len(rows)), key=lambda i: len(prompts[i]))
    size = max(1, batch_size or config.generation_batch)
    texts: dict[int, tuple[str, int, int]] = {}
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        width = max(len(prompts[i]) for i in chunk)
        new_tokens = max(1, min(config.max_new_tokens, context - width))
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(prompts[i]):] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]):] = 1
        if not quiet:
            print(f"generating {start + len(chunk)}/{len(order)} from {checkpoint} (prompts of up to {width} "
                  f"tokens, up to {new_tokens} new)", file=sys.stderr, flush=True)
        generated = model.generate(ids.to(device), attention_mask=mask.to(device), do_sample=True,
                                   top_p=config.top_p, temperature=config.temperature,
                                   repetition_penalty=config.repetition_penalty, max_new_tokens=new_tokens,
                                   eos_token_id=eot_id, pad_token_id=pad_id)
        for row, i in enumerate(chunk):
            reply = generated[row, width:]
            texts[i] = (tokenizer.decode(reply, skip_special_tokens=True), len(prompts[i]),
                        int((reply != pad_id).sum()))
    return [{"id": row.get("id"), "prompt": row["messages"][0]["content"] if row["messages"] else "",
             "generation": texts[i][0], "prompt_tokens": texts[i][1], "new_tokens": texts[i][2]}
            for i, row in enumerate(rows)]
