"""The training loop (one process per GPU; see :mod:`lima_data.train.launch` for how workers start).

Per optimizer step: the step's global batch of ``global_batch`` examples (a seeded shuffle per epoch) is split
over the ranks (examples ``rank, rank + world, ...``) and then into micro-batches; gradients accumulate over the
micro-batches. The loss is the sum over label tokens divided by the number of label tokens in the whole global
batch, so it does not depend on how the batch is split across ranks and micro-batches (each rank knows every
example's label count, so no extra communication is needed; FSDP's gradient averaging over ranks is undone by
scaling with the world size).
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..manifest import read_split
from . import data as D
from .config import TrainConfig
from .fsdp import full_state_dict, materialise, parameters_on_meta, shard
from .model import add_residual_dropout, default_p_max, resize_for_tokenizer

#: Dense bf16 peak FLOP/s per GPU, for MFU (by a substring of the device name).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "V100": 125e12}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(device_type: str) -> tuple[int, int]:
    """Join the process group started by torchrun (or the test harness), or start a one-process group."""
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if "RANK" in os.environ:
            dist.init_process_group(backend)
        else:
            dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    return dist.get_rank(), dist.get_world_size()


def _device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(config.device)


def load_tokenizer(config: TrainConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.tokenizer or config.model)


def _model_config(path: str):
    from transformers import AutoConfig

    p = Path(path)
    return AutoConfig.from_pretrained(str(p.parent if p.is_file() else p))


def build_model(config: TrainConfig, vocab_size: int, rank: int, mesh, device: torch.device):
    """The sharded model: rank 0 reads the weights (or, for a bare config, initialises them with the seed),
    every rank builds on meta, EOT rows are added before sharding, then rank 0's weights are broadcast."""
    from transformers import AutoModelForCausalLM

    model_config = _model_config(config.model)
    full_state = None
    if rank == 0:
        path = Path(config.model)
        has_weights = path.is_dir() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin")))
        if has_weights:
            real = AutoModelForCausalLM.from_pretrained(str(path), dtype="auto")
        else:
            torch.manual_seed(config.seed)
            real = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
        resize_for_tokenizer(real, vocab_size)
        full_state = {k: v.float() for k, v in real.state_dict().items()}
        del real
    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    resize_for_tokenizer(model, vocab_size)
    model.config.use_cache = False
    if config.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    num_parameters = sum(p.numel() for p in model.parameters())
    p_max = config.residual_dropout if config.residual_dropout is not None else default_p_max(num_parameters)
    rates = add_residual_dropout(model, p_max)
    shard(model, mesh, bf16=config.bf16)
    materialise(model, device, full_state)
    return model, num_parameters, rates


def _lr_lambda(config: TrainConfig, total_steps: int):
    """Linear decay from ``lr`` to ``final_lr`` over the run (LIMA: 1e-5 -> 1e-6), after optional warmup."""
    ratio = config.final_lr / config.lr

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        span = max(1, total_steps - 1 - config.warmup_steps)
        return 1.0 - (1.0 - ratio) * min(1.0, (step - config.warmup_steps) / span)

    return factor


def make_optimizer(model, config: TrainConfig, total_steps: int):
    """AdamW (LIMA: betas 0.9 / 0.95, weight decay 0.1 on matrices; norms and biases undecayed) and the linear
    schedule."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=config.betas,
                                  foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
    return optimizer, scheduler


def _loss_sum(model, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, int]:
    batch = {k: v.to(device) for k, v in batch.items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shift_logits = logits[:, :-1].float().reshape(-1, logits.shape[-1])
    shift_labels = batch["labels"][:, 1:].reshape(-1)
    loss = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=D.IGNORE, reduction="sum")
    return loss, int((shift_labels != D.IGNORE).sum())


class Checkpoints:
    """Sharded resume checkpoints with torch.distributed.checkpoint: ``<output>/checkpoints/step-<n>/`` holds the
    model and optimizer shards, ``trainer.json`` (step, epoch, scheduler, world size) and each rank's RNG state;
    a ``COMPLETE`` marker is written last, so a save cut short is never resumed from."""

    def __init__(self, output: Path, keep: int):
        self.root = output / "checkpoints"
        self.keep = keep

    def latest(self) -> Path | None:
        done = sorted((p for p in self.root.glob("step-*") if (p / "COMPLETE").exists()),
                      key=lambda p: int(p.name.split("-")[1]))
        return done[-1] if done else None

    def save(self, model, optimizer, scheduler, state: dict[str, Any], rank: int) -> Path:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        path = self.root / f"step-{state['step']:08d}"
        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                   path / f"rng-rank{rank}.pt")
        dist.barrier()
        if rank == 0:
            (path / "trainer.json").write_text(json.dumps({**state, "scheduler": scheduler.state_dict()}))
            (path / "COMPLETE").write_text("")
            done = sorted((p for p in self.root.glob("step-*") if (p / "COMPLETE").exists()),
                          key=lambda p: int(p.name.split("-")[1]))
            for old in done[:-self.keep] if self.keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        return path

    def load(self, path: Path, model, optimizer, scheduler, rank: int) -> dict[str, Any]:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path))
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
        trainer = json.loads((path / "trainer.json").read_text())
        scheduler.load_state_dict(trainer.pop("scheduler"))
        rng = path / f"rng-rank{rank}.pt"
        if rng.exists() and trainer.get("world") == dist.get_world_size():
            saved = torch.load(rng, weights_only=False)
            torch.set_rng_state(saved["torch"])
            random.setstate(saved["python"])
            if saved["cuda"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(saved["cuda"])
        return trainer


def _flops_per_token(num_parameters: int, model_config, seq_len: float) -> float:
    """6N for the matrices (forward + backward) plus the attention term 12 * layers * hidden * sequence length."""
    layers = getattr(model_config, "num_hidden_layers", 0)
    hidden = getattr(model_config, "hidden_size", 0)
    return 6 * num_parameters + 12 * layers * hidden * seq_len


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_FLOPS.items() if k in name), None)


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Metrics:
    """Per-step and per-epoch records as JSON lines in ``<output>/metrics.jsonl`` (rank 0), and to TensorBoard
    when the ``tensorboard`` package is installed."""

    def __init__(self, output: Path, rank: int):
        self.rank = rank
        self.path = output / "metrics.jsonl"
        self.writer = None
        if rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(output / "tensorboard"))
            except ImportError:
                pass

    def log(self, record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self.writer.add_scalar(key, value, record["step"])


@torch.no_grad()
def dev_loss(model, examples: list[dict[str, list[int]]], pad_id: int, rank: int, world: int,
             device: torch.device, micro_batch: int) -> float | None:
    """Mean token loss over the dev examples (all ranks take part)."""
    if not examples:
        return None
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for chunk in D.rank_micro_batches(list(range(len(examples))), rank, world, micro_batch):
        batch = D.collate([examples[i] for i in chunk] or [{"input_ids": [pad_id], "labels": [D.IGNORE]}], pad_id)
        loss, count = _loss_sum(model, batch, device)
        if chunk:
            total += torch.tensor([loss.item(), count], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    model.train()
    return float(total[0] / max(1.0, total[1]))


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training in this process; every rank calls it. Returns a summary (on every rank).

    Raises:
        ValueError: the manifest has no train rows, or the global batch does not split evenly over ranks and
            micro-batches.
    """
    device = _device(config)
    rank, world = init_distributed(device.type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (world,))
    if config.global_batch % (world * config.micro_batch):
        raise ValueError(f"global_batch {config.global_batch} does not split into {world} ranks x micro_batch "
                         f"{config.micro_batch}")
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed + rank)
    random.seed(config.seed + rank)

    tokenizer = load_tokenizer(config)
    eot_id, pad_id = D.prepare_tokenizer(tokenizer)
    train_rows, dev_rows = read_split(config.manifest, "train"), read_split(config.manifest, "dev")
    if not train_rows:
        raise ValueError(f"{config.manifest}: no train rows")
    examples = [D.encode(r["messages"], tokenizer, eot_id, config.max_length) for r in train_rows]
    dev_examples = [D.encode(r["messages"], tokenizer, eot_id, config.max_length) for r in dev_rows]
    counts = [D.label_count(e) for e in examples]

    model, num_parameters, rates = build_model(config, len(tokenizer), rank, mesh, device)
    model.train()
    steps_per_epoch = math.ceil(len(examples) / config.global_batch)
    total_steps = steps_per_epoch * config.epochs
    optimizer, scheduler = make_optimizer(model, config, total_steps)
    checkpoints = Checkpoints(output, config.keep_checkpoints)
    metrics = Metrics(output, rank)
    step = 0
    if config.resume and (latest := checkpoints.latest()) is not None:
        step = checkpoints.load(latest, model, optimizer, scheduler, rank)["step"]
        metrics.log({"event": "resumed", "from": str(latest), "step": step, "world": world})
    if rank == 0:
        (output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
        metrics.log({"event": "start", "parameters": num_parameters, "world": world, "dropout": rates,
                     "steps": total_steps, "examples": len(examples)})
    peak = _peak_flops(device)
    losses: list[float] = []
    exported: list[str] = []
    stop = False
    for epoch in range(step // steps_per_epoch, config.epochs):
        batches = D.global_batches(len(examples), config.global_batch, config.seed, epoch)
        for index in range(step - epoch * steps_per_epoch, len(batches)):
            batch = batches[index]
            start = time.perf_counter()
            global_count = sum(counts[i] for i in batch)
            loss_total = torch.zeros(1, dtype=torch.float64, device=device)
            tokens = 0
            for chunk in D.rank_micro_batches(batch, rank, world, config.micro_batch):
                if chunk:
                    micro = D.collate([examples[i] for i in chunk], pad_id)
                else:  # this rank ran out of examples: a pass that keeps FSDP's collectives in step
                    micro = D.collate([{"input_ids": [pad_id], "labels": [D.IGNORE]}], pad_id)
                loss_sum, _ = _loss_sum(model, micro, device)
                (loss_sum * world / max(1, global_count)).backward()
                loss_total += loss_sum.detach().double()
                tokens += int(micro["attention_mask"].sum()) if chunk else 0
            clip = config.grad_clip if config.grad_clip else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            dist.all_reduce(loss_total)
            loss = float(loss_total / max(1, global_count))
            losses.append(loss)
            step += 1
            seconds = time.perf_counter() - start
            tokens_per_s = tokens / seconds
            seq = tokens / max(1, len(batch) / world)
            record = {"step": step, "epoch": epoch + 1, "loss": loss, "lr": lr, "grad_norm": float(grad_norm),
                      "tokens_per_s_per_gpu": round(tokens_per_s, 1), "peak_memory_gib": round(_peak_memory_gib(device), 3),
                      "seconds": round(seconds, 3)}
            if peak:
                record["mfu"] = round(tokens_per_s * _flops_per_token(num_parameters, model.config, seq) / peak, 4)
            metrics.log(record)
            if config.save_every_steps and step % config.save_every_steps == 0:
                checkpoints.save(model, optimizer, scheduler, {"step": step, "epoch": epoch, "world": world}, rank)
            if config.max_steps and step >= config.max_steps:
                stop = True
                break
        if stop:
            break
        epoch_number = epoch + 1
        metrics.log({"event": "epoch", "epoch": epoch_number, "step": step,
                     "dev_loss": dev_loss(model, dev_examples, pad_id, rank, world, device, config.micro_batch)})
        checkpoints.save(model, optimizer, scheduler, {"step": step, "epoch": epoch_number, "world": world}, rank)
        if epoch_number in config.export_epochs:
            from .export import export_checkpoint, generate_rows

            path = export_checkpoint(model, tokenizer, eot_id, output / "export" / f"epoch-{epoch_number:02d}",
                                     config, rank)
            if rank == 0 and path is not None:
                exported.append(str(path))
                prompts = [r for r in dev_rows[: config.dev_generations]]
                if prompts:
                    generations = generate_rows(path, prompts, config, device="cpu" if device.type == "cpu" else device)
                    with open(output / f"generations-epoch-{epoch_number:02d}.jsonl", "w", encoding="utf-8") as fh:
                        for row in generations:
                            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            dist.barrier()
    if config.save_final_state:
        state = full_state_dict(model)
        if rank == 0:
            torch.save(state, output / "final_state.pt")
    return {"steps": step, "losses": losses, "exported": exported, "rank": rank, "world": world,
            "dropout": rates, "parameters": num_parameters}


def main(argv: list[str] | None = None) -> None:
    """Worker entry point: ``python -m lima_data.train.trainer --config CONFIG.json`` (what the launcher runs)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    summary = train(TrainConfig.load(args.config))
    if summary["rank"] == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
