"""Model preparation: EOT added to the vocabulary (rows padded to a multiple of 64, new rows = the mean of the old
ones), residual dropout rising with depth (LIMA), and finding a model's decoder layers."""

from __future__ import annotations

import torch
from torch import nn

VOCAB_MULTIPLE = 64


def resize_for_tokenizer(model: nn.Module, vocab_size: int) -> None:
    """Resize input and output embeddings to ``vocab_size`` rounded up to a multiple of 64; new rows take the mean
    of the existing rows (a neutral start for EOT and pad). Never shrinks: a model with more rows than its
    tokenizer has tokens (padded vocabularies) keeps them, and their trained weights. Works on the meta device
    (shapes only)."""
    old = model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old:
        return
    model.resize_token_embeddings(vocab_size, pad_to_multiple_of=VOCAB_MULTIPLE, mean_resizing=False)
    new = model.get_input_embeddings().weight.shape[0]
    if new <= old:
        return
    with torch.no_grad():
        for embedding in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings()) if e is not None}.values():
            weight = embedding.weight
            if weight.device.type != "meta":
                weight[old:] = weight[:old].mean(dim=0, keepdim=True)


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The model's decoder layers: the modules whose class is in ``model._no_split_modules`` (Hugging Face's own
    list of blocks that must not be split), else the longest ModuleList of one class.

    Raises:
        ValueError: none found.
    """
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if layers:
        return layers
    best: list[nn.Module] = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > len(best) and len({type(m) for m in module}) == 1:
            best = list(module)
    if not best:
        raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")
    return best


def dropout_schedule(num_layers: int, p_max: float) -> list[float]:
    """LIMA: residual dropout p = 0 at the bottom layer, rising linearly to ``p_max`` at the top layer."""
    if num_layers == 1:
        return [p_max]
    return [p_max * i / (num_layers - 1) for i in range(num_layers)]


def default_p_max(num_parameters: int) -> float:
    """LIMA: 0.3 (its 65B model); 0.2 for smaller models (here: under 30B parameters)."""
    return 0.3 if num_parameters >= 30e9 else 0.2


def _dropout_hook(p: float):
    def hook(module: nn.Module, args, output):
        if not module.training or p == 0:
            return output
        if isinstance(output, tuple):
            return (nn.functional.dropout(output[0], p, training=True), *output[1:])
        return nn.functional.dropout(output, p, training=True)

    return hook


def add_residual_dropout(model: nn.Module, p_max: float) -> list[float]:
    """Dropout on each decoder layer's attention and MLP outputs (the residual branches), p rising with depth;
    active only in training mode. Returns the per-layer rates.

    Attention / MLP sub-modules are found by the attributes Llama-style layers use (``self_attn`` / ``attention``
    / ``attn`` and ``mlp`` / ``feed_forward``).
    """
    layers = decoder_layers(model)
    rates = dropout_schedule(len(layers), p_max)
    for layer, p in zip(layers, rates):
        layer.residual_dropout = p
        for name in ("self_attn", "attention", "attn", "mlp", "feed_forward"):
            sub = getattr(layer, name, None)
            if isinstance(sub, nn.Module):
                sub.register_forward_hook(_dropout_hook(p))
    return rates
