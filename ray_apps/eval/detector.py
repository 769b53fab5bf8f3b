"""PlatoLM's human-like ratio: the share of user turns a human-vs-machine text classifier calls human."""

from __future__ import annotations

import torch

from ..config import ConfigError
from ..models.loading import load_classifier, load_tokenizer


def human_like_ratio(path: str, texts: list[str], human_label: str, batch_size: int = 32) -> float | None:
    """Share of ``texts`` that ``path``'s classifier labels ``human_label`` (None without texts)."""
    tokenizer, model = load_tokenizer(path), load_classifier(path).eval()
    labels = {i: str(name).lower() for i, name in model.config.id2label.items()}
    if human_label.lower() not in labels.values():
        raise ConfigError(f"eval.human_label: {human_label!r} is not a label of {path} (its labels: {labels})")
    human = 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            predicted = model(**batch).logits.argmax(-1).tolist()
        human += sum(labels[i] == human_label.lower() for i in predicted)
    return round(human / len(texts), 4) if texts else None
