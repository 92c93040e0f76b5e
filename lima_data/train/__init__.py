"""The trainer: fine-tune a LLaMA-family model on a manifest with PyTorch FSDP2 and LIMA's recipe.

Needs the ``train`` extra (torch, transformers); nothing outside this package imports it.
"""
