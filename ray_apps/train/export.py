"""The final model as a plain Hugging Face directory (safetensors, tokenizer, chat template)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..config import TrainConfig
from ..models.chat_format import fit_model
from ..models.loading import load_model

MODEL_DIR = "model"
FINAL_MARKER = "FINAL.json"


def save_final_model(
    trainer, tokenizer, out: Path, base_model: str, cfg: TrainConfig, rank: int, token_env: str
) -> None:
    """Every rank must call this (ZeRO-3 gathers the weights); rank 0 writes ``out``: the weights, and the
    tokenizer with the chat template it was trained with and the end marker as one token.

    With LoRA the adapter is merged into the base weights (fitted to the tokenizer first, as for training), so the
    result loads without peft.
    """
    target = out.parent / "adapter" if cfg.lora.enabled else out
    trainer.save_model(str(target))
    if rank != 0:
        return
    if cfg.lora.enabled:
        from peft import PeftModel

        base = load_model(base_model, token_env)
        fit_model(base, tokenizer)
        merged = PeftModel.from_pretrained(base, str(target)).merge_and_unload()
        merged.save_pretrained(out, safe_serialization=True)
        shutil.rmtree(target, ignore_errors=True)
    tokenizer.save_pretrained(out)
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle of trainer settings, not part of the model
