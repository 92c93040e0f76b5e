"""Training settings, with LIMA's recipe as the defaults (LIMA section 3 / appendix: "15 epochs using AdamW with
beta1 = 0.9, beta2 = 0.95, and weight decay of 0.1. Without warmup steps, we set the initial learning rate to 1e-5
and linearly decaying to 1e-6 by the end of training. The batch size is set to 32 examples (64 for smaller models),
and texts longer than 2048 tokens are trimmed. ... we apply dropout over residual connections, starting at p = 0.0
at the bottom layer and linearly raising the rate to p = 0.3 at the last layer (p = 0.2 for smaller models).")."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RecipeError


@dataclass
class TrainConfig:
    """Every setting of ``lima-data train``; a config file (TOML or JSON) and the CLI override these defaults.

    Lengths are in tokens; ``global_batch`` in examples per optimizer step (across all ranks and micro-batches).
    """

    manifest: str = ""
    model: str = ""                  # a Hugging Face model folder or Hub id (through the HF cache)
    from_scratch: bool = False       # allow a model without weight files: random init (tests, dry runs)
    tokenizer: str = ""              # default: the model folder
    output: str = "runs/lima"
    epochs: int = 15
    lr: float = 1e-5
    final_lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    warmup_steps: int = 0
    global_batch: int | None = None  # None: LIMA's rule, 64 under 30B parameters, 32 from 30B
    micro_batch: int = 1             # examples per rank per forward pass
    max_length: int = 2048
    residual_dropout: float | None = None   # None: 0.3 for >= 30B parameters, else 0.2
    grad_clip: float | None = None
    activation_checkpointing: bool = True
    bf16: bool = True                # bf16 compute over fp32 sharded master weights; False: fp32 throughout
    save_every_steps: int = 0        # 0: only at the end of each epoch
    keep_checkpoints: int = 2        # resume checkpoints kept (oldest pruned)
    export_epochs: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    dev_generations: int = 3         # dev prompts sampled from each export after training (rank 0)
    generation_batch: int = 8        # prompts per generate() call
    max_new_tokens: int = 2048
    top_p: float = 0.9
    temperature: float = 0.7
    repetition_penalty: float = 1.2
    seed: int = 0
    resume: bool = False
    max_steps: int = 0               # stop after this many optimizer steps (0: all epochs); for smoke runs
    device: str = "auto"             # auto: cuda when available, else cpu
    save_final_state: bool = False   # also write the full fp32 state dict to <output>/final_state.pt (rank 0)
    overwrite: bool = False          # remove another run's checkpoints and exports from the output folder
    allow_modified_manifest: bool = False  # train even when a split's sha256 differs from manifest.json
    attn_implementation: str = "sdpa"      # sdpa, eager, flash_attention_2 (when installed)
    log_every: int = 1               # a progress line on stderr every N steps (0: none)
    cpu_offload: bool = False        # FSDP2 CPUOffloadPolicy: sharded parameters, gradients, optimizer on the host

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> "TrainConfig":
        """Defaults, then the file at ``path`` (TOML or JSON, flat keys), then ``overrides`` that are not None.

        Raises:
            RecipeError: unreadable file or an unknown key (named).
        """
        values: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            try:
                text = path.read_text(encoding="utf-8")
                values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
                raise RecipeError(f"{path}: cannot read training config: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise RecipeError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(known)}")
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        config = cls(**values)
        if (config.global_batch is not None and config.global_batch < 1) or config.micro_batch < 1 \
                or config.epochs < 1:
            raise RecipeError("global_batch, micro_batch and epochs must be positive")
        return config


def default_global_batch(num_parameters: int) -> int:
    """LIMA's batch rule: "The batch size is set to 32 examples (64 for smaller models)"; smaller = under 30B
    parameters (the 7B and 13B models; 33B and 65B take 32)."""
    return 32 if num_parameters >= 30e9 else 64
