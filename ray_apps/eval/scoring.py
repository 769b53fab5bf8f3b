"""A model scored on the human turns of held-out real conversations (their simulator view, the view
UserGPT was trained on), in one forward pass per conversation:

- **perplexity** of the human turns;
- **termination**: at the start of every human turn after an assistant answer, does the model write
  ``<|endconversation|>`` exactly where the real conversation ended, and not before? Precision, recall
  and F1 of those decisions, as UserLM ("Flipping the Dialogue", 2025) reports termination F1, for
  three ways of deciding: ``likelier`` (the end marker is more probable than every way of going on
  together: the model's own decision, the headline figure), ``top_token`` (the end marker is the single
  most probable token: going on is split among many first tokens, so this ends too often) and
  ``sampled`` (``samples`` draws at the rollout's temperature and top-p: what a rollout does).

A marker of several tokens (a model that writes it as text) decides on all of them: the chance of the sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ConfigError
from ..conversation import END_OF_CONVERSATION
from ..models.chat_format import end_marker_id, fit_model, load_chat_tokenizer
from ..models.loading import load_model
from ..train.views import training_messages


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    samples: int = 4
    seed: int = 0


def _turn_starts(mask: list[int]) -> list[int]:
    """Positions of the first token of each trainable (human) turn."""
    return [i for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1])]


def _sampled_probability(logits: torch.Tensor, token: int, sampling: Sampling) -> float:
    """The chance that temperature and nucleus (top-p) sampling from ``logits`` (one row) draws ``token``."""
    if sampling.temperature == 0:
        return float(int(logits.argmax()) == token)
    probs = torch.softmax(logits.float() / sampling.temperature, -1)
    ordered, order = probs.sort(descending=True)
    kept = ordered.cumsum(-1) - ordered <= sampling.top_p  # the nucleus: tokens whose predecessors hold <= top_p
    rank = int((order == token).nonzero()[0])
    return float(ordered[rank] / ordered[kept].sum()) if kept[rank] else 0.0


def _ending_logits(model, ids: list[int], starts: list[int], logits: torch.Tensor, marker: list[int]) -> list:
    """For each turn start, the logits that predict the end marker's tokens there (one row per token): read off the
    conversation's own pass where the marker is one token or the turn is the marker, else from a pass of the
    conversation up to that turn followed by the marker."""
    rows = []
    for s in starts:
        if len(marker) == 1 or ids[s : s + len(marker)] == marker:
            rows.append(logits[s - 1 : s - 1 + len(marker)])
            continue
        probe = torch.tensor([ids[:s] + marker[:-1]], device=logits.device)
        with torch.inference_mode():
            rows.append(model(input_ids=probe, logits_to_keep=len(marker)).logits[0])
    return rows


def _f1(decisions: list[tuple[bool, bool]]) -> dict:
    """Precision, recall and F1 of (predicted end, real end) pairs."""
    tp = sum(p and r for p, r in decisions)
    fp = sum(p and not r for p, r in decisions)
    fn = sum(r and not p for p, r in decisions)
    return {
        "f1": round(2 * tp / (2 * tp + fp + fn), 4) if tp + fp + fn else None,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "decisions": len(decisions),
    }


def score_human_turns(
    path: str,
    records: list[dict],
    max_length: int,
    simulator_prompt: str,
    sampling: Sampling,
    chat_template: str = "auto",
    marker_token: bool = True,
) -> dict:
    """Perplexity of ``path``'s model on the human turns, and its termination decisions, in its chat format
    (``chat_template``, ``model.chat_template``: a trained export carries its own; an untrained base is readied as
    training readies it, the end marker a new token starting as the one that closes a turn). ``marker_token=False``
    scores a model that writes the end marker as text (a prompted simulator told to): its decision to end is the
    chance of the marker's tokens in its own vocabulary."""
    tokenizer = load_chat_tokenizer(path, chat_template, end_marker=marker_token)
    model = load_model(path).eval()
    fit_model(model, tokenizer)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    marker = (
        [end_marker_id(tokenizer)]
        if marker_token
        else tokenizer(END_OF_CONVERSATION, add_special_tokens=False).input_ids
    )
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    from tqdm.auto import tqdm

    nll, tokens, likelier, top, sampled = 0.0, 0, [], [], []
    for record in tqdm(records, desc=f"score {Path(path).name}", unit="conversation"):
        messages = training_messages(record, "user", simulator_prompt=simulator_prompt)
        encoded = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = encoded["input_ids"][:max_length], encoded["assistant_masks"][:max_length]
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        scored = sum(1 for label in labels[1:] if label != -100)  # the first position predicts nothing
        if not scored:
            continue
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=device), labels=torch.tensor([labels], device=device))
        nll, tokens = nll + float(out.loss) * scored, tokens + scored
        starts = _turn_starts(mask)[1:]  # the opening is not a decision to end
        if not starts:
            continue
        for s, rows in zip(starts, _ending_logits(model, ids, starts, out.logits[0], marker)):
            real = ids[s : s + len(marker)] == marker
            chance = torch.log_softmax(rows.float(), -1)[range(len(marker)), marker].sum().exp()
            likelier.append((float(chance) > 0.5, real))
            top.append((rows.argmax(-1).tolist() == marker, real))
            drawn = math.prod(_sampled_probability(row, t, sampling) for row, t in zip(rows, marker))
            draws = torch.rand(sampling.samples, generator=generator, device=device) < drawn
            sampled += [(bool(d), real) for d in draws]
    if not tokens:
        raise ConfigError(
            f"{path}: no human-turn tokens to score "
            "(does its chat template mark the assistant turns with {% generation %}?)"
        )
    return {
        "model": path,
        "perplexity": round(math.exp(nll / tokens), 4),
        "tokens": tokens,
        "termination": {
            "likelier": _f1(likelier),
            "top_token": _f1(top),
            "sampled": _f1(sampled) | {"samples_per_decision": sampling.samples},
        },
    }
