"""`realm init-model`: a tokenizer trained on the corpus and a small LLaMA-architecture model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from ..config import PipelineConfig, write_run_config
from ..errors import InputError
from ..records import read_records
from .chat_format import apply_chat_format, chat_format, fit_model
from .tokenizer import train_tokenizer


def corpus_texts(corpus: str | Path) -> Iterator[str]:
    """Message contents of a dataset (a prepared directory, a rollout's, or a file of records)."""
    records, _ = read_records(corpus)
    for record in records:
        yield from (m["content"] for m in record["messages"])


def run_init_model(config: PipelineConfig, corpus: str | Path, output: str | Path) -> Path:
    """Train the tokenizer on ``corpus``, build the preset model, save both as one HF directory."""
    spec = config.model.init
    texts = list(corpus_texts(corpus))
    if not texts:
        raise InputError(
            f"--corpus: no conversations found under {corpus} (expected `realm prepare` output: Parquet or JSONL "
            "records)"
        )
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    apply_chat_format(tokenizer, chat_format(tokenizer, config.model.chat_template))
    torch.manual_seed(config.run.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(model_config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id)
    fit_model(model, tokenizer)  # the stop and pad tokens
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output, safe_serialization=True)
    tokenizer.save_pretrained(output)
    write_run_config(config, output)
    print(
        f"init-model: {sum(p.numel() for p in model.parameters()):,} parameters, vocabulary {len(tokenizer)}, "
        f"trained on {len(texts):,} messages -> {output}",
        flush=True,
    )
    return output
