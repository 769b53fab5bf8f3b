"""`realm init-model`: a tokenizer trained on the corpus and a small LLaMA-architecture model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from ..config import PipelineConfig, write_run_config
from .tokenizer import train_tokenizer


def corpus_texts(corpus: str | Path) -> Iterator[str]:
    """Message contents of a prepared dataset directory (Parquet), or of JSONL files in it."""
    corpus = Path(corpus)
    files = sorted(corpus.rglob("*.parquet"))
    if files:
        for file in files:
            for messages in pq.read_table(file, columns=["messages"]).column("messages").to_pylist():
                yield from (m["content"] for m in messages)
        return
    for file in sorted(corpus.rglob("*.json*")):
        with file.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                yield from (m.get("content", "") for m in record.get("messages", []) if isinstance(m, dict))


def run_init_model(config: PipelineConfig, corpus: str | Path, output: str | Path) -> Path:
    """Train the tokenizer on ``corpus``, build the preset model, save both as one HF directory."""
    spec = config.model.init
    texts = list(corpus_texts(corpus))
    if not texts:
        raise ValueError(f"no conversations found under {corpus} (expected prepared Parquet or JSONL)")
    tokenizer = train_tokenizer(texts, spec.vocab_size)
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
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
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
