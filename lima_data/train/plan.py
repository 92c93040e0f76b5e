"""``lima-data train --plan``: memory per GPU for a model, a GPU count and the options, checked before anything is
loaded.

Per GPU, with FSDP full sharding over ``G`` GPUs and ``N`` parameters (bytes):

- fp32 master weights ``4N/G``, fp32 gradients ``4N/G``, AdamW moments ``8N/G`` (so 16N/G in all);
- bf16 copies of the layers gathered for compute: two decoder layers at a time (the one computing and the one
  prefetched), ``2 * 2 * N_layer``, plus the gathered embeddings and output head ``2 * N_root``;
- activations: with checkpointing, each layer's input is kept (``2 * b * s * h`` bytes per layer, bf16) plus one
  layer's recomputed working set (about ``2 * b * s * (10 h + 2 ff)`` bytes); without it, that working set for
  every layer; logits in fp32 for the loss (``2 * 4 * b * s * V``: the logits and their gradient);
- a fixed 3 GiB for the CUDA context, NCCL buffers and allocator slack.

``b`` = micro-batch, ``s`` = max length (tokens), ``h`` = hidden size, ``ff`` = MLP size, ``V`` = vocabulary.
A plan above ``usable`` (0.92) of the GPU's memory is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 2**30
OVERHEAD = 3 * GIB
USABLE = 0.92

#: LLaMA-1 shapes (Touvron et al. 2023, Table 2): the models LIMA fine-tuned.
PRESETS: dict[str, dict[str, int]] = {
    "llama-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "vocab_size": 32000},
    "llama-13b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40, "vocab_size": 32000},
    "llama-33b": {"hidden_size": 6656, "intermediate_size": 17920, "num_hidden_layers": 60, "vocab_size": 32000},
    "llama-65b": {"hidden_size": 8192, "intermediate_size": 22016, "num_hidden_layers": 80, "vocab_size": 32000},
}


@dataclass
class Shape:
    hidden: int
    ff: int
    layers: int
    vocab: int
    kv_ratio: float = 1.0  # key/value heads over attention heads (grouped-query attention)
    tied: bool = False

    @property
    def layer_params(self) -> int:
        h = self.hidden
        attention = 2 * h * h + 2 * int(h * h * self.kv_ratio)
        return attention + 3 * h * self.ff + 2 * h

    @property
    def root_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.root_params


def shape_of(model: str) -> Shape:
    """A preset name (``llama-7b`` ... ``llama-65b``) or a Hugging Face config (folder or config.json)."""
    if model in PRESETS:
        p = PRESETS[model]
        return Shape(p["hidden_size"], p["intermediate_size"], p["num_hidden_layers"], p["vocab_size"])
    from pathlib import Path

    from transformers import AutoConfig

    path = Path(model)
    cfg = AutoConfig.from_pretrained(str(path.parent if path.is_file() else path))
    heads = getattr(cfg, "num_attention_heads", 1)
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    return Shape(cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size, kv / heads,
                 bool(getattr(cfg, "tie_word_embeddings", False)))


def plan(model: str, gpus: int, gpu_memory_gib: float, *, micro_batch: int = 1, max_length: int = 2048,
         activation_checkpointing: bool = True) -> dict[str, Any]:
    """Memory per GPU in GiB, by part, and whether it fits (see the module docstring)."""
    s = shape_of(model)
    b, t, h = micro_batch, max_length, s.hidden
    working_layer = 2 * b * t * (10 * h + 2 * s.ff)
    parts = {
        "master_weights_fp32": 4 * s.params / gpus,
        "gradients_fp32": 4 * s.params / gpus,
        "adamw_states_fp32": 8 * s.params / gpus,
        "gathered_bf16_layers": 2 * 2 * s.layer_params + 2 * s.root_params,
        "activations": (2 * b * t * h * s.layers + working_layer) if activation_checkpointing
        else working_layer * s.layers,
        "logits_fp32": 2 * 4 * b * t * s.vocab,
        "overhead": OVERHEAD,
    }
    total = sum(parts.values())
    limit = USABLE * gpu_memory_gib * GIB
    return {
        "model": model,
        "parameters": s.params,
        "gpus": gpus,
        "gpu_memory_gib": gpu_memory_gib,
        "parts_gib": {k: round(v / GIB, 2) for k, v in parts.items()},
        "total_gib": round(total / GIB, 2),
        "limit_gib": round(limit / GIB, 2),
        "fits": total <= limit,
        "min_gpus": _min_gpus(s, gpu_memory_gib, parts, gpus),
    }


def _min_gpus(s: Shape, gpu_memory_gib: float, parts: dict[str, float], gpus: int) -> int | None:
    fixed = sum(v for k, v in parts.items() if not k.endswith("fp32") or k == "logits_fp32")
    room = USABLE * gpu_memory_gib * GIB - fixed
    if room <= 0:
        return None
    need = 16 * s.params / room
    return max(1, int(need) + (need > int(need)))
