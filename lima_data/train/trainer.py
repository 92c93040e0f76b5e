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
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InputError, LimaDataError
from ..manifest import MANIFEST_FILE, SPLIT_FILES, load_manifest, read_split, sha256_file
from . import data as D
from .config import TrainConfig, default_global_batch
from .fsdp import full_state_dict, materialise, parameters_on_meta, shard
from .model import add_residual_dropout, default_p_max, resize_for_tokenizer
from .weights import TEMPLATE, export_model, export_state, has_weights, load_sharded, resolve_model

#: Dense (no sparsity) bf16 tensor-core peak FLOP/s per GPU, keyed by the exact ``torch.cuda.get_device_name``
#: (vendor data sheets). A name not listed gives no MFU rather than a wrong one.
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,      # H100 SXM5
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,
    "NVIDIA GH200 480GB": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA L40S": 362e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10": 125e12,
    "NVIDIA A10G": 70e12,
    "Tesla V100-SXM2-16GB": 125e12,       # fp16 (V100 has no bf16)
    "Tesla V100-SXM2-32GB": 125e12,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(device_type: str) -> tuple[int, int]:
    """Join the process group started by torchrun (or the test harness), or start a one-process group."""
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device_type == "cuda" else "gloo"  # gloo for CPU-offloaded tensors
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


def load_tokenizer(config: TrainConfig, model_folder: Path | None = None):
    from transformers import AutoTokenizer

    source = config.tokenizer or str(model_folder or config.model)
    if config.tokenizer and not Path(config.tokenizer).exists():
        source = str(resolve_model(config.tokenizer))
    return AutoTokenizer.from_pretrained(source)


def verify_manifest(config: TrainConfig) -> list[str]:
    """The splits the trainer reads (train, dev) checked against the sha256 that ``manifest.json`` records (the
    check ``lima-data validate`` makes, with the same helpers). Returns the problems (empty when unchanged).

    Raises:
        InputError: not a manifest folder.
    """
    folder = Path(config.manifest)
    files = load_manifest(folder).get("files", {})
    problems = []
    for split in ("train", "dev"):
        name = SPLIT_FILES[split]
        file = folder / name
        if not file.is_file():
            continue
        recorded = files.get(name)
        if recorded is None:
            problems.append(f"{file}: not listed in {MANIFEST_FILE}")
        elif sha256_file(file) != recorded.get("sha256"):
            problems.append(f"{file}: sha256 differs from {MANIFEST_FILE} (the file was changed after the build)")
    return problems


def model_source(config: TrainConfig) -> tuple[Path, bool]:
    """The model's local folder and whether it has weights.

    Raises:
        InputError: the folder or Hub id has no weight files and ``from_scratch`` is not set (random weights are
            never a silent default).
    """
    folder = resolve_model(config.model)
    weights = has_weights(folder)
    if not weights and not config.from_scratch:
        raise InputError(config.model, "no weight files (*.safetensors, *.bin) in the model folder; pass "
                                       "--from-scratch to train from random weights on purpose")
    return folder, weights


def build_model(config: TrainConfig, vocab_size: int, rank: int, mesh, device: torch.device,
                folder: Path | None = None, weights: bool | None = None):
    """The sharded model. Every rank builds it on meta, adds the EOT rows, shards it and allocates its shards; then
    the weights stream in one tensor at a time from rank 0 (:func:`weights.load_sharded`), so no rank ever holds
    the whole model. With ``from_scratch`` (no weight files), rank 0 initialises a full fp32 model with the seed
    and broadcasts it (meant for small models: tests, dry runs)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if folder is None:
        folder, weights = model_source(config)
    model_config = AutoConfig.from_pretrained(str(folder))
    if config.attn_implementation == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            raise LimaDataError("--attn-implementation flash_attention_2 needs the flash-attn package "
                                "(pip install flash-attn); sdpa needs nothing")
    attn = {"attn_implementation": config.attn_implementation} if config.attn_implementation else {}
    full_state = None
    if rank == 0 and not weights:
        torch.manual_seed(config.seed)
        real = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32, **attn)
        resize_for_tokenizer(real, vocab_size)
        full_state = {k: v.float() for k, v in real.state_dict().items()}
        del real
    with parameters_on_meta():
        model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32, **attn)
    rows = model.get_input_embeddings().weight.shape[0]
    resize_for_tokenizer(model, vocab_size)
    tables = {id(e.weight) for e in (model.get_input_embeddings(), model.get_output_embeddings()) if e is not None}
    resized = {n: rows for n, p in model.named_parameters() if id(p) in tables}  # name -> rows in the files
    model.config.use_cache = False
    if config.activation_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    num_parameters = sum(p.numel() for p in model.parameters())
    p_max = config.residual_dropout if config.residual_dropout is not None else default_p_max(num_parameters)
    rates = add_residual_dropout(model, p_max)
    shard(model, mesh, bf16=config.bf16, cpu_offload=config.cpu_offload)
    home = torch.device("cpu") if config.cpu_offload else device
    if weights:
        materialise(model, home, None, load=False)
        load_sharded(model, folder, resized, rank, device)  # scattered on the GPU, copied into host shards
    else:
        materialise(model, home, full_state)
    return model, num_parameters, rates


def embedding_parameters(model) -> int:
    """Parameters of the input embedding table (a lookup, no FLOPs); excluded from MFU's 6N."""
    embedding = model.get_input_embeddings()
    return embedding.weight.numel() if embedding is not None else 0


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
    a ``COMPLETE`` marker is written last and lists every file with its size in bytes, so a save cut short is never
    resumed from and a file truncated later is found before loading (:meth:`verify`). A step is saved once
    (:meth:`save` returns the existing folder when asked again)."""

    def __init__(self, output: Path, keep: int):
        self.root = output / "checkpoints"
        self.keep = keep

    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        return sorted((p for p in self.root.glob("step-*") if (p / "COMPLETE").exists()),
                      key=lambda p: int(p.name.split("-")[1]))

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def path(self, step: int) -> Path:
        return self.root / f"step-{step:08d}"

    def save(self, model, optimizer, scheduler, state: dict[str, Any], rank: int) -> Path:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict

        path = self.path(state["step"])
        if (path / "COMPLETE").exists():
            return path
        if rank == 0 and path.exists():  # a save of this step cut short earlier
            shutil.rmtree(path)
        dist.barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(path))
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
                   path / f"rng-rank{rank}.pt")
        dist.barrier()
        if rank == 0:
            (path / "trainer.json").write_text(json.dumps({**state, "scheduler": scheduler.state_dict()}))
            sizes = {f.name: f.stat().st_size for f in sorted(path.iterdir()) if f.is_file()}
            tmp = path / "COMPLETE.tmp"
            tmp.write_text(json.dumps({"files": sizes}))
            tmp.rename(path / "COMPLETE")
        dist.barrier()
        return path

    def prune(self, rank: int, protect: set[Path] = frozenset()) -> None:
        """Remove all but the newest ``keep`` complete checkpoints (rank 0)."""
        if rank == 0 and self.keep > 0:
            for old in self.complete()[:-self.keep]:
                if old not in protect:
                    shutil.rmtree(old, ignore_errors=True)
        dist.barrier()

    @staticmethod
    def verify(path: Path) -> str | None:
        """What is wrong with a checkpoint folder (None when its files match the sizes COMPLETE lists)."""
        try:
            text = (path / "COMPLETE").read_text()
            listed = json.loads(text)["files"] if text.strip() else None
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            return "its COMPLETE marker is unreadable"
        if not (path / "trainer.json").is_file() or not (path / ".metadata").is_file():
            return "trainer.json or .metadata is missing"
        for name, size in (listed or {}).items():
            file = path / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != size:
                return f"{name} has {file.stat().st_size} bytes, {size} when saved (truncated or changed)"
        return None

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

    def resume(self, model, optimizer, scheduler, rank: int) -> tuple[dict[str, Any], Path] | None:
        """Load the newest checkpoint that verifies and loads; a damaged one is skipped with a warning naming it
        and the one used instead. Collective. Returns ``(trainer state, folder)``, or None when there is none.

        Raises:
            LimaDataError: every complete checkpoint is damaged (the newest named).
        """
        candidates = self.complete()[::-1]
        damaged: list[tuple[Path, str]] = []
        for path in candidates:
            box = [self.verify(path) if rank == 0 else None]
            dist.broadcast_object_list(box, src=0)
            problem = box[0]
            if problem is None:
                try:
                    trainer = self.load(path, model, optimizer, scheduler, rank)
                except Exception as exc:  # noqa: BLE001 - any load failure marks the checkpoint damaged
                    message = str(exc).strip().splitlines()
                    problem = f"it does not load ({type(exc).__name__}: {message[-1] if message else ''})"
                    dist.barrier()
                else:
                    if damaged and rank == 0:
                        bad, why = damaged[0]
                        _warn(f"checkpoint {bad} is damaged ({why}); resuming from {path} instead")
                        for old, _ in damaged:  # out of the way, so a later save of that step is not skipped
                            old.rename(old.with_name("damaged-" + old.name))
                    dist.barrier()
                    return trainer, path
            damaged.append((path, problem))
        if damaged:
            bad, why = damaged[0]
            raise LimaDataError(f"{bad}: damaged checkpoint ({why}) and no earlier complete checkpoint to fall "
                                f"back to; start again with --overwrite")
        return None


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _flops_per_token(num_parameters: int, model_config, seq_len: float) -> float:
    """6N for the matrices (forward + backward; ``num_parameters`` without the input embedding table, which is a
    lookup; the output head is a matmul and counts) plus the attention term 12 * layers * hidden * sequence length
    (PaLM, Chowdhery et al. 2022, appendix B)."""
    layers = getattr(model_config, "num_hidden_layers", 0)
    hidden = getattr(model_config, "hidden_size", 0)
    return 6 * num_parameters + 12 * layers * hidden * seq_len


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return PEAK_FLOPS.get(torch.cuda.get_device_name(device))


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
        self._last_print = time.perf_counter()
        self.writer = None
        if rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(output / "tensorboard"))
            except ImportError:
                pass

    def truncate(self, step: int) -> None:
        """After a resume from ``step``: drop the records of later steps (they are trained again), so every step
        appears once in the file."""
        if self.rank != 0 or not self.path.exists():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)

    def progress(self, record: dict[str, Any], total_steps: int, first_step: int, started: float) -> None:
        """One line on stderr: step, epoch, loss, lr, tokens/s per GPU, ETA (from the steps run in this process)."""
        if self.rank != 0:
            return
        done = record["step"] - first_step
        left = total_steps - record["step"]
        eta = (time.perf_counter() - started) / max(1, done) * left
        hours, rest = divmod(int(eta), 3600)
        print(f"step {record['step']}/{total_steps} epoch {record['epoch']} loss {record['loss']:.4f} "
              f"lr {record['lr']:.3g} tokens/s/gpu {record['tokens_per_s_per_gpu']:.0f}"
              + (f" mfu {record['mfu']:.1%}" if "mfu" in record else "")
              + f" ETA {hours}h{rest // 60:02d}m{rest % 60:02d}s", file=sys.stderr, flush=True)

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


class _Stop:
    """SIGTERM / SIGINT set a flag; the loop checks it (agreed over all ranks) after each optimizer step, saves a
    checkpoint and returns. A second signal exits at once."""

    def __init__(self):
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def agreed(self, device: torch.device) -> bool:
        flag = torch.tensor([1.0 if self.signal is not None else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def _check_output(output: Path, config: TrainConfig, rank: int) -> None:
    """Refuse an output folder holding another run's checkpoints or exports unless resuming or overwriting;
    ``--overwrite`` removes them (rank 0). Collective."""
    problem = None
    if rank == 0:
        held = [p for p in (output / "checkpoints", output / "export") if p.is_dir() and any(p.iterdir())]
        if held and config.overwrite:
            for path in held + [output / "metrics.jsonl", output / TEMPLATE]:
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        elif held and not config.resume:
            problem = (f"{output}: holds another run's {held[0].name}/; pass --resume to continue it or "
                       f"--overwrite to start again (removes its checkpoints and exports)")
    box = [problem]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise LimaDataError(box[0])


def _export_name(step: int, steps_per_epoch: int, config: TrainConfig, final: bool) -> str | None:
    """The export an end of step calls for: ``epoch-NN`` at the end of an epoch in ``export_epochs``, ``final`` at
    the run's last step (when that is not already an epoch export), else None."""
    if step % steps_per_epoch == 0 and step // steps_per_epoch in config.export_epochs:
        return f"epoch-{step // steps_per_epoch:02d}"
    return "final" if final else None


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training in this process; every rank calls it. Returns a summary (on every rank).

    The end of an exporting epoch is complete when its checkpoint and its export both exist: a resume from that
    checkpoint writes a missing export before going on. The run's last state is always exported (``final`` unless
    it is an epoch export). SIGTERM / SIGINT save a checkpoint and return with ``interrupted`` set.

    Raises:
        ValueError: the manifest has no train rows, or the global batch does not split evenly over ranks and
            micro-batches.
        LimaDataError: the manifest's splits differ from manifest.json (unless ``allow_modified_manifest``), the
            model has no weights (unless ``from_scratch``), the output folder holds another run, or every
            checkpoint is damaged.
    """
    device = _device(config)
    rank, world = init_distributed(device.type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (world,))
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    problems = verify_manifest(config) if rank == 0 else []
    if problems and rank == 0:
        if config.allow_modified_manifest:
            for problem in problems:
                _warn(f"{problem}; training on it (--allow-modified-manifest)")
        else:
            problems = [f"{problems[0]}; rebuild the manifest, or pass --allow-modified-manifest to train on it"]
    box = [None if config.allow_modified_manifest or not problems else problems[0]]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise LimaDataError(box[0])
    _check_output(output, config, rank)
    torch.manual_seed(config.seed + rank)
    random.seed(config.seed + rank)

    box = [None]
    if rank == 0:  # fetch a Hub id once into the cache; the other ranks then find it there
        try:
            model_source(config)
        except LimaDataError as exc:
            box = [str(exc)]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise LimaDataError(box[0])
    folder, weights = model_source(config)
    tokenizer = load_tokenizer(config, folder)
    eot_id, pad_id = D.prepare_tokenizer(tokenizer)
    train_rows, dev_rows = read_split(config.manifest, "train"), read_split(config.manifest, "dev")
    if not train_rows:
        raise ValueError(f"{config.manifest}: no train rows")
    examples = [D.encode(r["messages"], tokenizer, eot_id, config.max_length) for r in train_rows]
    dev_examples = [D.encode(r["messages"], tokenizer, eot_id, config.max_length) for r in dev_rows]
    counts = [D.label_count(e) for e in examples]

    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB: libraries, tokenizer, data
    model, num_parameters, rates = build_model(config, len(tokenizer), rank, mesh, device, folder, weights)
    global_batch = config.global_batch or default_global_batch(num_parameters)
    if global_batch % (world * config.micro_batch):
        raise ValueError(f"global_batch {global_batch} does not split into {world} ranks x micro_batch "
                         f"{config.micro_batch}; use a GPU count that divides it")
    model.train()
    steps_per_epoch = math.ceil(len(examples) / global_batch)
    total_steps = steps_per_epoch * config.epochs
    last_step = min(total_steps, config.max_steps) if config.max_steps else total_steps
    optimizer, scheduler = make_optimizer(model, config, total_steps)
    checkpoints = Checkpoints(output, config.keep_checkpoints)
    metrics = Metrics(output, rank)
    template = output / TEMPLATE
    if rank == 0:
        _write_template(model, tokenizer, eot_id, config, template)
    step = 0
    exported: list[str] = []

    def export(name: str, at: int) -> None:
        path = export_model(model, output / "export" / name, template,
                            {"step": at, "epoch": at / steps_per_epoch}, rank)
        if path is not None:
            exported.append(str(path))
            metrics.log({"event": "export", "step": at, "path": str(path)})

    def save(at: int, epoch: int) -> Path:
        path = checkpoints.save(model, optimizer, scheduler, {"step": at, "epoch": epoch, "world": world,
                                                              "global_batch": global_batch}, rank)
        name = _export_name(at, steps_per_epoch, config, at == last_step)
        if name is not None:
            state = export_state(output / "export" / name) if rank == 0 else None
            box = [state is not None and state.get("step") == at]
            dist.broadcast_object_list(box, src=0)
            if not box[0]:
                export(name, at)
        checkpoints.prune(rank)
        return path

    if config.resume:
        found = checkpoints.resume(model, optimizer, scheduler, rank)
        if found is not None:
            trainer_state, path = found
            step = trainer_state["step"]
            if trainer_state.get("global_batch", global_batch) != global_batch:
                raise LimaDataError(f"{path}: saved with global_batch {trainer_state['global_batch']}, this run "
                                    f"has {global_batch}; resume with --global-batch "
                                    f"{trainer_state['global_batch']}")
            metrics.truncate(step)
            metrics.log({"event": "resumed", "from": str(path), "step": step, "world": world})
            save(step, step // steps_per_epoch)  # redoes the export this checkpoint's step called for, if missing
    if step == 0 and rank == 0 and metrics.path.exists():  # a fresh start: records of a run killed before its
        metrics.path.unlink()                                # first checkpoint are not this run's
    if rank == 0:
        (output / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2))
        metrics.log({"event": "start", "step": step, "parameters": num_parameters, "world": world,
                     "dropout": rates, "steps": total_steps, "examples": len(examples),
                     "global_batch": global_batch, "baseline_rss_gib": round(baseline_rss, 3)})
    peak = _peak_flops(device)
    flop_parameters = num_parameters - embedding_parameters(model)
    losses: list[float] = []
    interrupted = None
    first_step, started = step, time.perf_counter()
    with _Stop() as stopper:
        for epoch in range(step // steps_per_epoch, config.epochs):
            if step >= last_step:
                break
            batches = D.global_batches(len(examples), global_batch, config.seed, epoch)
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
                          "tokens_per_s_per_gpu": round(tokens_per_s, 1),
                          "peak_memory_gib": round(_peak_memory_gib(device), 3), "seconds": round(seconds, 3)}
                if peak:
                    record["mfu"] = round(tokens_per_s * _flops_per_token(flop_parameters, model.config, seq)
                                          / peak, 4)
                metrics.log(record)
                if config.log_every and (step % config.log_every == 0 or step == last_step):
                    metrics.progress(record, last_step, first_step, started)
                epoch_end = index == len(batches) - 1
                if epoch_end:
                    metrics.log({"event": "epoch", "epoch": epoch + 1, "step": step,
                                 "dev_loss": dev_loss(model, dev_examples, pad_id, rank, world, device,
                                                      config.micro_batch)})
                if stopper.agreed(device):
                    save(step, epoch + int(epoch_end))
                    interrupted = signal.Signals(stopper.signal).name if stopper.signal else "signal"
                    break
                if epoch_end or step == last_step or (config.save_every_steps
                                                      and step % config.save_every_steps == 0):
                    save(step, epoch + int(epoch_end))
                if step >= last_step:
                    break
            if interrupted or step >= last_step:
                break
    if interrupted is None and step == last_step and rank == 0:
        path = output / "export" / (_export_name(step, steps_per_epoch, config, True) or "final")
        if str(path) not in exported and export_state(path) is not None:
            exported.append(str(path))  # written before a resume that had nothing left to train
    if config.save_final_state:
        state = full_state_dict(model)
        if rank == 0:
            torch.save(state, output / "final_state.pt")
    summary = {"steps": step, "losses": losses, "exported": exported, "rank": rank, "world": world,
               "dropout": rates, "parameters": num_parameters, "global_batch": global_batch,
               "interrupted": interrupted}
    if interrupted is None and config.dev_generations and rank == 0 and exported:
        # after the last collective: the sharded model and optimizer are freed first, so generation has the memory
        del model, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
        summary["generations"] = dev_generations(exported, dev_rows, config, device, num_parameters)
    return summary


def _write_template(model, tokenizer, eot_id: int, config: TrainConfig, template: Path) -> None:
    """The non-weight files every export of this run shares: the model config (a copy, with the resized vocabulary
    and ``use_cache`` on for generation; the training model's own config is left alone), the tokenizer with EOT
    and the chat template, and a generation config that stops at EOT and samples with LIMA's settings."""
    import copy

    from transformers import GenerationConfig

    tmp = template.with_name(template.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hf_config = copy.deepcopy(model.config)
    hf_config.use_cache = True
    hf_config.vocab_size = model.get_input_embeddings().weight.shape[0]
    hf_config.dtype = torch.bfloat16
    hf_config.save_pretrained(str(tmp))
    GenerationConfig(
        do_sample=True, top_p=config.top_p, temperature=config.temperature,
        repetition_penalty=config.repetition_penalty, max_new_tokens=config.max_new_tokens,
        eos_token_id=[eot_id] + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []),
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id).save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if template.exists():
        shutil.rmtree(template)
    tmp.rename(template)


def dev_generations(exports: list[str], dev_rows: list[dict[str, Any]], config: TrainConfig,
                    device: torch.device, num_parameters: int = 0) -> list[str]:
    """Replies to the first ``dev_generations`` dev prompts from each export, written to
    ``<output>/generations-<export>.jsonl``; run on rank 0 after training, with the training state freed. Skipped
    with a warning (and the ``lima-data generate`` command to run instead) when the bf16 model would not fit on
    one GPU. Returns the files written."""
    from ..files import write_jsonl
    from .export import generate_rows

    rows = dev_rows[: config.dev_generations]
    written: list[str] = []
    if not rows:
        return written
    if device.type == "cuda":
        need = 2.4 * num_parameters  # bf16 weights plus 20% for the KV cache and activations
        if need > torch.cuda.get_device_properties(device).total_memory:
            _warn(f"dev generations skipped: the bf16 model needs ~{need / 2**30:.0f} GiB, more than one GPU; run "
                  f"`lima-data generate --checkpoint EXPORT ...` on a machine that holds it")
            return written
    for export in exports:
        out = Path(config.output) / f"generations-{Path(export).name}.jsonl"
        write_jsonl(out, generate_rows(export, rows, config, device=device))
        written.append(str(out))
    return written


def main(argv: list[str] | None = None) -> None:
    """Worker entry point: ``python -m lima_data.train.trainer --config CONFIG.json`` (what the launcher runs)."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    try:
        summary = train(TrainConfig.load(args.config))
    except LimaDataError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if summary["rank"] == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "losses"}))
    dist.destroy_process_group()
    if summary["interrupted"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
