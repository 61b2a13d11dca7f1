"""Train TRL's DPO, KTO and reward trainers for a few steps on a published dataset version.

    <trl env python> tests/export/trl_train.py DATASET_DIR OUT_DIR

Runs in the TRL environment (scripts/trl_env.py), not the project's: it needs only ``datasets``,
``tokenizers``, ``transformers`` and ``trl``. Nothing is downloaded: the tokenizer is a byte-level
BPE trained here on the dataset's own text, with a chat template, and the model a one-layer Llama
with random weights, saved to OUT_DIR (TRL loads the DPO and KTO reference models from a path).
Prints one JSON line per trainer: its name, the steps run and the last training loss.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from datasets import load_dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    LlamaConfig,
    PreTrainedTokenizerFast,
)
from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, RewardConfig, RewardTrainer

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
STEPS = 2


def texts(dataset_dir: Path) -> list[str]:
    found: list[str] = []
    for config in ("dpo", "kto", "reward"):
        for row in load_dataset(str(dataset_dir), config, split="train"):
            for value in row.values():
                if isinstance(value, str):
                    found.append(value)
                elif isinstance(value, list) and value and isinstance(value[0], dict):
                    found += [m["content"] for m in value]
    return found


def build_tokenizer(corpus: list[str], folder: Path) -> PreTrainedTokenizerFast:
    specials = ["<|pad|>", "<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>", "<|system|>",
                "<|end|>"]  # fmt: skip
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=1000, special_tokens=specials)
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<|pad|>",
        bos_token="<|bos|>",
        eos_token="<|eos|>",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(folder)
    return wrapped


def build_models(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    config.num_labels = 1
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder / "reward")
    tokenizer.save_pretrained(folder / "reward")


def common(out: Path, name: str) -> dict[str, object]:
    return {
        "output_dir": str(out / name),
        "max_steps": STEPS,
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        "use_cpu": True,
        "seed": 0,
    }


def main(dataset_dir: Path, out: Path) -> None:
    tokenizer = build_tokenizer(texts(dataset_dir), out / "tokenizer")
    build_models(tokenizer, out)
    trainers = {
        "dpo": (DPOTrainer, DPOConfig, out / "policy"),
        "kto": (KTOTrainer, KTOConfig, out / "policy"),
        "reward": (RewardTrainer, RewardConfig, out / "reward"),
    }
    runs = [
        (name, trainer(
            model=str(model),
            args=config(**common(out, name), max_length=256),
            train_dataset=load_dataset(str(dataset_dir), name, split="train"),
            processing_class=tokenizer,
        ))
        for name, (trainer, config, model) in trainers.items()
    ]  # fmt: skip
    for name, trainer in runs:
        result = trainer.train()
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        print(json.dumps({"trainer": name, "steps": result.global_step,
                          "loss": losses[-1] if losses else None,
                          "finite": bool(losses) and all(math.isfinite(x) for x in losses)}),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
