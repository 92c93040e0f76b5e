"""FSDP2 setup: build on the meta device, shard each decoder layer and the root on an explicit device mesh, then
materialise and fill the shards from rank 0's full weights (so a 65B model is never held whole on every rank).

Mixed precision: parameters stay fp32 (the sharded master weights the optimizer updates) and are gathered in bf16
for compute; gradients are reduced in fp32. Pure bf16 weights would round away LIMA's small updates (a 1e-6
learning rate on a weight of 1.0 is below bf16's resolution of 2^-7 near 1).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from .model import decoder_layers


@contextmanager
def parameters_on_meta():
    """Create modules with their parameters on the meta device (no memory) and their buffers where they would
    be (small, and not part of the checkpoint: e.g. rotary frequencies)."""
    register = nn.Module.register_parameter

    def on_meta(module, name, param):
        register(module, name, param)
        if param is not None:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def shard(model: nn.Module, mesh, *, bf16: bool, cpu_offload: bool = False) -> None:
    """``fully_shard`` each decoder layer, then the root, on ``mesh``; with ``cpu_offload`` the sharded fp32
    parameters, their gradients and the optimizer step live in host memory (FSDP2 ``CPUOffloadPolicy``: each
    layer is copied to the GPU for its forward and backward)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if bf16 else \
        MixedPrecisionPolicy()
    offload = CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cpu_offload else OffloadPolicy()
    for layer in decoder_layers(model):
        fully_shard(layer, mesh=mesh, mp_policy=policy, offload_policy=offload)
    fully_shard(model, mesh=mesh, mp_policy=policy, offload_policy=offload)


def materialise(model: nn.Module, device: torch.device, full_state: dict[str, torch.Tensor] | None,
                load: bool = True) -> None:
    """Allocate the (sharded) parameters on ``device`` and, with ``load``, fill them from ``full_state``, which only
    rank 0 holds (other ranks pass ``None``); buffers are kept as they were built.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    buffers = {name: b.detach().clone() for name, b in model.named_buffers() if b.device.type != "meta"}
    model.to_empty(device=device)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name in buffers:
                b.copy_(buffers[name].to(device))
    if not load:
        return
    set_model_state_dict(model, full_state or {},
                         options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=False))


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state on CPU, on rank 0 (other ranks get an empty dict). Collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
