"""Manifest rows -> token ids and labels (LIMA: "we introduce a special end-of-turn token (EOT) at the end of each
utterance"; loss on the assistant's tokens only).

Chat format: each utterance's tokens followed by EOT, in order (``[BOS] user EOT assistant EOT user EOT ...``). No
role words are added: turns alternate, and EOT marks where each ends. Labels are the assistant utterances' tokens and
their EOT; user and system tokens are ``-100``. Sequences are trimmed at ``max_length`` tokens. Batches are padded
to their own longest row (no packing), so "32 examples per step" keeps its meaning.
"""

from __future__ import annotations

import random

import torch

EOT = "<|eot|>"
PAD = "<|pad|>"
IGNORE = -100

def chat_template(eot: str = EOT) -> str:
    """The Jinja chat template of the training format (set by :func:`prepare_tokenizer`, saved with exported
    checkpoints), rendering exactly the tokens :func:`encode` trains on: BOS, then each utterance followed by
    ``eot``, no role words.

    - Assistant utterances and their EOT are wrapped in ``{% generation %}`` markers, so
      ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the tokens that carry loss and TRL's
      ``SFTTrainer(assistant_only_loss=True)`` accepts it.
    - A system message is allowed first only (as in the authored rows), rendered like a user turn (its text and
      EOT, no loss), as ``encode`` does; a system message later in the conversation raises an error.
    - ``add_generation_prompt`` adds nothing: with no role words the reply starts right after the last EOT.
    """
    return (
        "{{ bos_token }}{% for message in messages %}"
        "{% if message['role'] == 'system' and not loop.first %}"
        "{{ raise_exception('a system message must come first') }}{% endif %}"
        "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}{{ '" + eot + "' }}"
        "{% endgeneration %}{% else %}{{ message['content'] }}{{ '" + eot + "' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{% endif %}"
    )


#: The chat template of :func:`chat_template` with lima-data's EOT token.
CHAT_TEMPLATE = chat_template()


def prepare_tokenizer(tokenizer) -> tuple[int, int]:
    """Add EOT (a special token) and a pad token distinct from EOS and EOT; set the chat template.

    Returns ``(eot_id, pad_id)``.
    """
    specials = [EOT]
    if tokenizer.pad_token is None or tokenizer.pad_token in (tokenizer.eos_token, EOT):
        specials.append(PAD)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    if PAD in specials:
        tokenizer.pad_token = PAD
    tokenizer.chat_template = CHAT_TEMPLATE
    eot_id = tokenizer.convert_tokens_to_ids(EOT)
    pad_id = tokenizer.pad_token_id
    if pad_id in (eot_id, tokenizer.eos_token_id):
        raise ValueError("the pad token must differ from EOT and EOS")
    return eot_id, pad_id


def encode(messages: list[dict[str, str]], tokenizer, eot_id: int, max_length: int) -> dict[str, list[int]]:
    """Token ids and labels of one conversation (see the module docstring)."""
    ids: list[int] = []
    labels: list[int] = []
    if tokenizer.bos_token_id is not None:
        ids.append(tokenizer.bos_token_id)
        labels.append(IGNORE)
    for message in messages:
        tokens = tokenizer.encode(message["content"], add_special_tokens=False) + [eot_id]
        ids.extend(tokens)
        labels.extend(tokens if message["role"] == "assistant" else [IGNORE] * len(tokens))
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def collate(examples: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a micro-batch to its longest row (right padding; labels and attention mask padded out)."""
    width = max((len(e["input_ids"]) for e in examples), default=1)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def label_count(example: dict[str, list[int]]) -> int:
    """Tokens that carry loss once shifted (the first position predicts nothing)."""
    return sum(1 for label in example["labels"][1:] if label != IGNORE)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order of examples in an epoch: a seeded shuffle that depends on (seed, epoch) only, so it is the same
    whatever the number of ranks (a resumed run on another world size sees the same data order)."""
    order = list(range(n))
    random.Random(f"{seed}:epoch:{epoch}").shuffle(order)
    return order


def global_batches(n: int, global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's optimizer steps, each a list of example indices (the last may be shorter)."""
    order = epoch_order(n, seed, epoch)
    return [order[i:i + global_batch] for i in range(0, n, global_batch)]


def rank_micro_batches(batch: list[int], rank: int, world: int, micro_batch: int) -> list[list[int]]:
    """This rank's micro-batches of one global batch: examples ``rank, rank + world, ...`` in chunks of
    ``micro_batch``. Every rank gets the same number of micro-batches (empty ones where it runs out), because FSDP's
    collectives need every rank to run the same number of forward and backward passes."""
    mine = batch[rank::world]
    steps = -(-len(batch) // (world * micro_batch))
    return [mine[i * micro_batch:(i + 1) * micro_batch] for i in range(steps)]
