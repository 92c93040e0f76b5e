"""Model weights in and out without a whole-model copy on any rank.

In: :func:`resolve_model` turns a local folder or a Hugging Face Hub id into a local folder (Hub ids through the
Hugging Face cache, so ``HF_HUB_OFFLINE=1`` works with a filled cache); :func:`load_sharded` reads the weights
tensor by tensor from the safetensors shards (or memory-mapped ``.bin`` files) on rank 0 and scatters each tensor
into the FSDP-sharded model, so rank 0's host memory holds one tensor at a time (the largest: the embedding table),
never the model.

Out: :class:`ExportWriter` writes a Hugging Face folder (bf16 safetensors in shards of at most ``shard_bytes`` with a
``model.safetensors.index.json``, the config, tokenizer and generation config from the run's ``hf-template/``) from a
stream of ``(name, tensor)``; the stream comes either from the sharded model, gathered one tensor at a time
(:func:`export_model`), or from a torch.distributed.checkpoint folder read one tensor at a time, with no process group
(:func:`export_checkpoint_folder`, behind ``lima-data convert``).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, LimaDataError

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
#: Files fetched for a Hub id: weights, configs and tokenizer files (not other frameworks' weights).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "tokenizer*"]
SHARD_BYTES = 5 * 2**30
TEMPLATE = "hf-template"
EXPORT_STATE = "lima_export.json"


def has_weights(folder: Path) -> bool:
    """True when ``folder`` holds safetensors or PyTorch ``.bin`` weight files."""
    return folder.is_dir() and any(any(folder.glob(p)) for p in WEIGHT_PATTERNS)


def resolve_model(model: str) -> Path:
    """A local folder for ``model``: a folder (or a config.json in one) as given, else a Hugging Face Hub id
    fetched through the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``; with ``HF_HUB_OFFLINE=1`` only the
    cache is read).

    Raises:
        InputError: not a folder and not found on the Hub or in the cache (the name and the cause given).
    """
    path = Path(model)
    if path.is_file():
        return path.parent
    if path.is_dir():
        return path
    if model.count("/") > 1 or model.startswith((".", "/", "~")):
        raise InputError(model, "no such model folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - every hub failure (offline, missing, auth) is one user error
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        hint = "not in the Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "cannot be fetched"
        raise InputError(model, f"not a model folder, and {hint} as a Hub id: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def _index(folder: Path) -> dict[str, Path]:
    """Tensor name -> file holding it."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    where: dict[str, Path] = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as fh:
                names = list(fh.keys())
        else:
            names = list(torch.load(file, mmap=True, weights_only=True, map_location="cpu"))
        for name in names:
            where[name] = file
    return where


class _Reader:
    """Reads single tensors from a folder's weight files, keeping at most one file open (mmap)."""

    def __init__(self, folder: Path, prefix: str):
        self.where = _index(folder)
        self.prefix = prefix
        self._file: Path | None = None
        self._handle: Any = None

    def key(self, name: str) -> str | None:
        if name in self.where:
            return name
        short = name.removeprefix(self.prefix + ".")
        return short if short in self.where else None

    def read(self, name: str) -> torch.Tensor:
        key = self.key(name)
        file = self.where[key]
        if file != self._file:
            if file.suffix == ".safetensors":
                from safetensors import safe_open

                self._handle = safe_open(str(file), framework="pt")
            else:
                self._handle = torch.load(file, mmap=True, weights_only=True, map_location="cpu")
            self._file = file
        if file.suffix == ".safetensors":
            return self._handle.get_tensor(key)
        return self._handle[key]


def load_sharded(model, folder: Path, resized: dict[str, int], rank: int, device: torch.device) -> None:
    """Fill the FSDP-sharded ``model`` (parameters already materialised on ``device``) from the weight files in
    ``folder``, one tensor at a time: rank 0 reads it (cast to fp32), pads the embedding rows named in ``resized``
    (name -> rows in the file) with the mean of the file's rows, and scatters it; each rank keeps its shard.
    Collective: every rank calls it. Peak extra memory per rank: one full fp32 tensor.

    Raises:
        InputError: (on every rank) a parameter is missing from the files or has another shape.
    """
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = list(model.named_parameters())
    reader = None
    problem = None
    if rank == 0:
        reader = _Reader(folder, getattr(model, "base_model_prefix", "model"))
        missing = [n for n, _ in params if reader.key(n) is None]
        if missing:
            problem = f"weights missing for {len(missing)} parameter(s), e.g. {missing[:3]}"
    box = [problem]
    dist.broadcast_object_list(box, src=0)
    if box[0]:
        raise InputError(folder, box[0])
    for name, param in params:
        shape = tuple(param.shape)
        error = None
        if rank == 0:
            full = reader.read(name).to(torch.float32)
            if name in resized and full.shape[0] < shape[0]:
                pad = full.mean(dim=0, keepdim=True).expand(shape[0] - full.shape[0], *full.shape[1:])
                full = torch.cat([full, pad])
            if tuple(full.shape) != shape:
                error = f"{name}: shape {tuple(full.shape)} in the weight files, {shape} in the model config"
            full = full.to(device)
        else:
            full = torch.empty(shape, dtype=torch.float32, device=device)
        box = [error]
        dist.broadcast_object_list(box, src=0)
        if box[0]:
            raise InputError(folder, box[0])
        with torch.no_grad():
            if isinstance(param, DTensor):
                local = distribute_tensor(full, param.device_mesh, param.placements, src_data_rank=0).to_local()
                param.to_local().copy_(local)
            else:
                dist.broadcast(full, src=0)
                param.copy_(full)
        del full


class ExportWriter:
    """Writes a Hugging Face model folder from ``(name, tensor)`` pairs: bf16 safetensors shards of at most
    ``shard_bytes``, an index, and the config / tokenizer / generation-config files of ``template``. Written into
    ``<out>.partial`` and renamed to ``out`` by :meth:`finish` (a leftover ``.partial`` is removed first)."""

    def __init__(self, out: Path, template: Path, shard_bytes: int = SHARD_BYTES, dtype=torch.bfloat16):
        self.out = Path(out)
        self.tmp = self.out.with_name(self.out.name + ".partial")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.template = template
        self.shard_bytes = shard_bytes
        self.dtype = dtype
        self.tied = bool(json.loads((template / "config.json").read_text()).get("tie_word_embeddings", False))
        self.current: dict[str, torch.Tensor] = {}
        self.current_bytes = 0
        self.files: list[tuple[str, list[str]]] = []
        self.total = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if self.tied and name == "lm_head.weight":
            return
        tensor = tensor.detach().to("cpu", self.dtype).contiguous()
        size = tensor.numel() * tensor.element_size()
        if self.current and self.current_bytes + size > self.shard_bytes:
            self._flush()
        self.current[name] = tensor
        self.current_bytes += size
        self.total += size

    def _flush(self) -> None:
        from safetensors.torch import save_file

        name = f"part-{len(self.files) + 1:05d}.safetensors"
        save_file(self.current, str(self.tmp / name), metadata={"format": "pt"})
        self.files.append((name, list(self.current)))
        self.current, self.current_bytes = {}, 0

    def finish(self, state: dict[str, Any]) -> Path:
        if self.current or not self.files:
            self._flush()
        n = len(self.files)
        weight_map = {}
        for i, (name, keys) in enumerate(self.files, 1):
            final = "model.safetensors" if n == 1 else f"model-{i:05d}-of-{n:05d}.safetensors"
            (self.tmp / name).rename(self.tmp / final)
            weight_map.update({k: final for k in keys})
        if n > 1:
            (self.tmp / "model.safetensors.index.json").write_text(json.dumps(
                {"metadata": {"total_size": self.total}, "weight_map": weight_map}, indent=2))
        for file in self.template.iterdir():
            if file.is_file():
                shutil.copy2(file, self.tmp / file.name)
        (self.tmp / EXPORT_STATE).write_text(json.dumps(state))
        if self.out.exists():
            shutil.rmtree(self.out)
        self.tmp.rename(self.out)
        return self.out


def export_state(folder: Path) -> dict[str, Any] | None:
    """The ``{"step", "epoch"}`` an export was written from, or None when ``folder`` is not a finished export."""
    try:
        return json.loads((Path(folder) / EXPORT_STATE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def export_model(model, out: Path, template: Path, state: dict[str, Any], rank: int,
                 shard_bytes: int = SHARD_BYTES) -> Path | None:
    """Export the FSDP-sharded ``model``: each tensor gathered in turn (``full_tensor``), rank 0 writes it to the
    current safetensors shard. Collective: every rank calls it; rank 0 returns the folder, the others None."""
    from torch.distributed.tensor import DTensor

    writer = ExportWriter(out, template, shard_bytes) if rank == 0 else None
    for name, value in model.state_dict().items():
        full = value.full_tensor() if isinstance(value, DTensor) else value
        if writer is not None:
            writer.add(name, full)
        del full
    return writer.finish(state) if writer is not None else None


def checkpoint_tensors(checkpoint: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """The model tensors of a torch.distributed.checkpoint folder written by the trainer, read one at a time with
    no process group (any world size).

    Raises:
        LimaDataError: the folder is not a readable checkpoint.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    try:
        metadata = dcp.FileSystemReader(str(checkpoint)).read_metadata()
    except Exception as exc:  # noqa: BLE001
        raise LimaDataError(f"{checkpoint}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    for key, meta in metadata.state_dict_metadata.items():
        if not key.startswith("model.") or not isinstance(meta, TensorStorageMetadata):
            continue
        tensor = torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        state = {"model": {key.removeprefix("model."): tensor}}
        with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
            warnings.simplefilter("ignore", UserWarning)
            dcp.load(state, checkpoint_id=str(checkpoint), no_dist=True)
        yield key.removeprefix("model."), tensor


def export_checkpoint_folder(checkpoint: Path, out: Path, template: Path, shard_bytes: int = SHARD_BYTES) -> Path:
    """Turn a complete trainer checkpoint into a Hugging Face export at ``out`` (one process, no GPU; host memory:
    one shard plus one fp32 tensor).

    Raises:
        LimaDataError: no COMPLETE marker, no template, or an unreadable checkpoint.
    """
    checkpoint = Path(checkpoint)
    if not (checkpoint / "COMPLETE").exists():
        raise LimaDataError(f"{checkpoint}: not a complete checkpoint (no COMPLETE marker)")
    if not (template / "config.json").is_file():
        raise LimaDataError(f"{template}: missing (the run folder's {TEMPLATE}/ with config and tokenizer)")
    try:
        trainer = json.loads((checkpoint / "trainer.json").read_text())
    except (OSError, json.JSONDecodeError):
        trainer = {}
    writer = ExportWriter(out, template, shard_bytes)
    for name, tensor in checkpoint_tensors(checkpoint):
        writer.add(name, tensor)
    return writer.finish({"step": trainer.get("step"), "epoch": trainer.get("epoch"), "from": str(checkpoint)})
