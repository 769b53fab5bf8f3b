"""`realm eval simulator`: how well the user simulator predicts real people. Its perplexity on the human
turns of held-out real conversations (their simulator view: the view UserGPT was trained on), next to
the same number for the untrained base model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..config import ConfigError, PipelineConfig
from ..layout import RunLayout
from ..models.loading import load_model, load_tokenizer
from ..records import read_records
from ..train.views import training_messages


def human_turn_perplexity(path: str, records: list[dict], max_length: int, simulator_prompt: str) -> dict:
    """Perplexity of ``path``'s model on the human turns (the ``assistant`` turns of the simulator view)."""
    tokenizer, model = load_tokenizer(path), load_model(path).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    from tqdm.auto import tqdm

    nll, tokens = 0.0, 0
    for record in tqdm(records, desc=f"perplexity {Path(path).name}", unit="conversation"):
        messages = training_messages(record, "user", simulator_prompt=simulator_prompt)
        encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = encoded["input_ids"][:max_length], encoded["assistant_masks"][:max_length]
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        scored = sum(1 for label in labels[1:] if label != -100)  # the first position predicts nothing
        if not scored:
            continue
        with torch.inference_mode():
            loss = model(
                input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device)
            ).loss
        nll, tokens = nll + float(loss) * scored, tokens + scored
    if not tokens:
        raise ConfigError(
            f"{path}: no human-turn tokens to score "
            "(does its chat template mark the assistant turns with {% generation %}?)"
        )
    return {"model": path, "perplexity": round(math.exp(nll / tokens), 4), "tokens": tokens}


def run_simulator(config: PipelineConfig, output: str | None = None) -> dict:
    cfg, layout = config.eval, RunLayout(config)
    models = {}
    for role, key, configured, default in (
        ("simulator", "eval.simulator_model", cfg.simulator_model, "usergpt"),
        ("base", "eval.simulator_base", cfg.simulator_base, "base"),
    ):
        models[role] = configured or str(layout.model(default))
        if not configured and not Path(models[role]).exists():
            raise ConfigError(f"{key}: no model at {models[role]} (train it first, or set {key} to a path or hub id)")
    heldout = cfg.heldout or str(layout.heldout)
    records, skipped = read_records(heldout)
    result = {"heldout": heldout, "conversations": len(records), "skipped_rows": dict(skipped)}
    for role, path in models.items():
        result[role] = human_turn_perplexity(path, records, config.train.max_length, config.train.simulator_prompt)
    out = Path(output) if output else layout.simulator
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"[eval simulator] human-turn perplexity on {len(records)} held-out conversations: "
        f"simulator {result['simulator']['perplexity']}, untrained base {result['base']['perplexity']} -> {out}",
        flush=True,
    )
    return result
