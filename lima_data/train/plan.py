"""``lima-data train --plan``: memory per GPU (and per node's host, and disk) for a model, a GPU count and the
options, checked before anything is loaded.

Per GPU, with FSDP full sharding over ``G`` GPUs and ``N`` parameters (bytes; ``L`` = one decoder layer's
parameters, ``R`` = embeddings + output head + final norm):

- fp32 master weights ``4N/G``, fp32 gradients ``4N/G``, AdamW moments ``8N/G`` (16N/G in all); with
  ``--cpu-offload`` (FSDP2 ``CPUOffloadPolicy``) these live in host memory instead and the optimizer steps there;
- bf16 parameters gathered for compute: two decoder layers at a time (the one computing and the one prefetched),
  ``2 * 2L``, plus the root's ``2R`` (the root stays gathered through forward and backward);
- unsharded gradients during backward: per layer in flight (two) its bf16 gradient and the fp32 copy reduced
  (``2 * (2 + 4) L``), plus the output head's bf16 gradient, held through the backward (``2 V h``);
- activations: with checkpointing, each layer's input is kept (``2 b s h`` per layer, bf16) plus one layer's
  recomputed working set, forward tensors and their gradients (``2 b s (50 h + 8 ff)``: RMSNorm's fp32
  intermediates, q/k/v, rotary copies, attention and MLP outputs, dropout masks, residuals); without it, the forward
  part for every layer;
- logits for the loss: ``14 b s V`` (bf16 logits 2, their fp32 copy 4, log-softmax 4, gradient 4);
- a fixed 3 GiB for the CUDA context, NCCL buffers and allocator slack.

With ``--fp32`` (no mixed precision) the gathered parameters, gradients and activations take 4 bytes instead of 2,
no fp32 reduce copy is made, the logits take 12 bytes, and on one GPU nothing is gathered (the shard is the
parameter). ``benchmarks/bench_plan_cpu.py`` checks the sum against measured peak RSS on CPU.

Not at the same time as training, so on their own lines: dev generations on rank 0 after training (bf16 weights
``2N`` plus 20%; when that does not fit one GPU the trainer skips them and says to use ``lima-data generate``).
Host memory per node: 3 GiB per worker process (libraries, CUDA) plus, on rank 0, one fp32 tensor being loaded or
exported (the largest: ``4 V h``) and one export shard (5 GiB); with offload also ``16N/G`` per GPU on the node.
Disk: each checkpoint is ``12N`` (fp32 weights and two moments), ``keep_checkpoints + 1`` of them at once, and each
export ``2N``.

``b`` = micro-batch, ``s`` = max length (tokens), ``h`` = hidden size, ``ff`` = MLP size, ``V`` = vocabulary.
A plan above ``usable`` (0.92) of the GPU's memory is refused, and so is a GPU count that does not divide the
global batch (LIMA: 64 examples per step under 30B parameters, 32 from 30B).
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
    try:
        cfg = AutoConfig.from_pretrained(str(path.parent if path.is_file() else path))
    except (OSError, ValueError) as exc:
        from ..errors import InputError

        raise InputError(model, f"no model config here or on the Hub (presets: {', '.join(PRESETS)}): "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    heads = getattr(cfg, "num_attention_heads", 1)
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    return Shape(cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size, kv / heads,
                 bool(getattr(cfg, "tie_word_embeddings", False)))


def plan(model: str, gpus: int, gpu_memory_gib: float, *, micro_batch: int = 1, max_length: int = 2048,
         activation_checkpointing: bool = True, global_batch: int | None = None, cpu_offload: bool = False,
         gpus_per_node: int | None = None, host_memory_gib: float | None = None, keep_checkpoints: int = 2,
         exports: int = 7, overhead_gib: float = OVERHEAD / GIB, bf16: bool = True) -> dict[str, Any]:
    """Memory per GPU in GiB, by part, host memory per node and disk, and whether it fits (see the module
    docstring). ``fits`` is False when the GPU (or, when ``host_memory_gib`` is given, the host) memory is
    exceeded or ``gpus * micro_batch`` does not divide the global batch; ``problems`` says which."""
    s = shape_of(model)
    b, t, h = micro_batch, max_length, s.hidden
    batch = global_batch or (32 if s.params >= 30e9 else 64)
    per_node = gpus_per_node or min(gpus, 8)
    sharded = 0 if cpu_offload else 1
    w = 2 if bf16 else 4  # compute dtype bytes (--fp32: parameters gathered, gradients and activations in fp32)
    forward_layer = b * t * (50 * h + 8 * s.ff) * w // 2
    parts = {
        "master_weights_fp32": sharded * 4 * s.params / gpus,
        "gradients_fp32": sharded * 4 * s.params / gpus,
        "adamw_states_fp32": sharded * 8 * s.params / gpus,
        # one GPU in fp32: the "shard" is the whole parameter and nothing is gathered
        "gathered_bf16_params": 0 if gpus == 1 and not bf16 else w * (2 * s.layer_params + s.root_params),
        "unsharded_gradients": 2 * (w + (4 if bf16 else 0)) * s.layer_params + w * s.vocab * s.hidden,
        "activations": (w * b * t * h * s.layers + 2 * forward_layer) if activation_checkpointing
        else forward_layer * (s.layers + 1),
        "logits": (14 if bf16 else 12) * b * t * s.vocab,
        "overhead": overhead_gib * GIB,
    }
    total = sum(parts.values())
    limit = USABLE * gpu_memory_gib * GIB
    host = OVERHEAD * per_node + 4 * s.vocab * s.hidden + 5 * GIB + (16 * s.params / gpus * per_node
                                                                      if cpu_offload else 0)
    generation = 2.4 * s.params
    problems = []
    if total > limit:
        problems.append(f"needs {total / GIB:.1f} GiB per GPU, {limit / GIB:.1f} usable")
    if batch % (gpus * micro_batch):
        problems.append(f"the global batch of {batch} examples does not split over {gpus} GPUs x micro-batch "
                        f"{micro_batch}")
    if host_memory_gib is not None and host > host_memory_gib * GIB:
        problems.append(f"needs {host / GIB:.0f} GiB of host memory per node, {host_memory_gib:g} there")
    return {
        "model": model,
        "parameters": s.params,
        "gpus": gpus,
        "gpu_memory_gib": gpu_memory_gib,
        "global_batch": batch,
        "cpu_offload": cpu_offload,
        "parts_gib": {k: round(v / GIB, 2) for k, v in parts.items()},
        "total_gib": round(total / GIB, 2),
        "limit_gib": round(limit / GIB, 2),
        "host_per_node_gib": round(host / GIB, 1),
        "disk_gib": round((12 * s.params * (keep_checkpoints + 1) + 2 * s.params * exports) / GIB, 1),
        "dev_generation_gib": round(generation / GIB, 1),
        "dev_generation_fits": generation <= limit,
        "fits": not problems,
        "problems": problems,
        "min_gpus": _min_gpus(s, gpu_memory_gib, parts, batch, micro_batch, cpu_offload),
    }


def _min_gpus(s: Shape, gpu_memory_gib: float, parts: dict[str, float], batch: int, micro_batch: int,
              cpu_offload: bool) -> int | None:
    """The fewest GPUs on which the plan fits and that divide the global batch (None: none up to 1,024)."""
    fixed = sum(v for k, v in parts.items() if k not in ("master_weights_fp32", "gradients_fp32",
                                                          "adamw_states_fp32"))
    room = USABLE * gpu_memory_gib * GIB - fixed
    for gpus in range(1, 1025):
        if batch % (gpus * micro_batch) == 0 and room > 0 and (cpu_offload or 16 * s.params / gpus <= room):
            return gpus
    return None
