"""The training format's chat template works with Hugging Face tokenizers and TRL: {% generation %} marks exactly
the tokens lima-data's trainer puts loss on, and TRL's SFTTrainer trains on a manifest with assistant_only_loss."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from lima_data.build import build  # noqa: E402
from lima_data.recipe import load_recipe  # noqa: E402
from tests.train_helpers import manifest_texts, tiny_llama, train_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("trl")
    manifest = build(load_recipe("sample"), out_dir=root / "manifests", quiet=True).path
    tokenizer = train_tokenizer(manifest_texts(manifest), root / "tokenizer")
    return manifest, tokenizer, tiny_llama(root / "model")


def test_template_masks_the_tokens_the_trainer_trains_on(assets):
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from lima_data.train import data as D

    manifest, tokenizer_dir, _ = assets
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    eot_id, _ = D.prepare_tokenizer(tokenizer)
    rows = load_dataset(str(manifest))["train"]
    multi = [r for r in rows if len(r["messages"]) > 2]
    assert multi, "the sample has multi-turn authored rows"
    for row in list(rows)[:5] + multi[:2]:
        rendered = tokenizer.apply_chat_template(row["messages"], return_dict=True,
                                                 return_assistant_tokens_mask=True)
        ours = D.encode(row["messages"], tokenizer, eot_id, max_length=10**9)
        assert rendered["input_ids"] == ours["input_ids"]
        assert rendered["assistant_masks"] == [int(label != D.IGNORE) for label in ours["labels"]]
    system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
              {"role": "assistant", "content": "Hello."}]
    rendered = tokenizer.apply_chat_template(system, return_dict=True, return_assistant_tokens_mask=True)
    assert rendered["input_ids"] == D.encode(system, tokenizer, eot_id, 10**9)["input_ids"]
    assert sum(rendered["assistant_masks"]) == len(tokenizer.encode("Hello.", add_special_tokens=False)) + 1
    prompt = tokenizer.apply_chat_template(system[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("Hi?" + D.EOT)
    with pytest.raises(Exception, match="system message must come first"):
        tokenizer.apply_chat_template(system[1:] + system[:1], tokenize=False)


def test_trl_sft_trainer_runs_two_steps_with_assistant_only_loss(assets, tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lima_data.train.data import EOT, prepare_tokenizer

    manifest, tokenizer_dir, model_dir = assets
    dataset = load_dataset(str(manifest))  # the ten-line route of the README
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    prepare_tokenizer(tokenizer)
    model = AutoModelForCausalLM.from_config(
        __import__("transformers").AutoConfig.from_pretrained(str(model_dir)))
    model.resize_token_embeddings(len(tokenizer))
    args = trl.SFTConfig(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=2,
                         assistant_only_loss=True, eos_token=EOT, max_length=128, report_to=[], logging_steps=1,
                         save_strategy="no", use_cpu=True, dataloader_num_workers=0, disable_tqdm=True)
    trainer = trl.SFTTrainer(model=model, args=args, train_dataset=dataset["train"].select_columns(["messages"]),
                             processing_class=tokenizer)
    # TRL's labels are lima-data's own: loss on the assistant turns and their EOT only
    from lima_data.train.data import IGNORE, encode

    first = trainer.train_dataset[0]
    ours = encode(dataset["train"][0]["messages"], tokenizer, tokenizer.convert_tokens_to_ids(EOT), 128)
    assert first["input_ids"] == ours["input_ids"]
    labels = first["labels"] if "labels" in first else [t if m else IGNORE for t, m in zip(
        first["input_ids"], first["assistant_masks"])]
    assert labels == ours["labels"] and IGNORE in labels and set(labels) != {IGNORE}
    result = trainer.train()
    assert result.global_step == 2 and result.training_loss > 0
