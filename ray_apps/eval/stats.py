"""`realm eval stats`: statistics of chat datasets side by side (real vs simulated), as the UltraChat
and ReaLM papers report them, as JSON, a Markdown table, PNG plots and one HTML report.

A dataset is a file or directory of records in the messages format (Parquet or JSONL: the output
of `realm prepare` or `realm rollout`) or ShareGPT JSONL. Lengths are in tokens of a named tokenizer
(or words without one); lexical diversity is MTLD (``lexicalrichness``, per utterance, averaged) and
distinct-1/2; topic diversity is the mean pairwise cosine similarity of session embeddings on a
sample (lower is more diverse) from an embedding model, or TF-IDF vectors offline.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..config import ConfigError, PipelineConfig
from ..conversation import ASSISTANT, USER, is_end_marker
from ..layout import RunLayout
from ..models.base import base_model
from ..models.tokens import text_token_counter, word_count
from ..records import read_records
from ..user_turns import rejection
from .plots import write_stats_report


def counter(tokenizer: str | None):
    """(tokens of a text, the unit's name): a tokenizer's tokens, or words and punctuation."""
    if tokenizer is None:
        return word_count, "words"
    return text_token_counter(tokenizer), f"tokens of {tokenizer}"


def stats_counter(config: PipelineConfig):
    """The counter of ``eval.stats_tokenizer``, else of the run's base model when there is one, else words."""
    if config.eval.stats_tokenizer:
        return counter(config.eval.stats_tokenizer)
    base = base_model(config)
    present = config.model.base is not None or (Path(base) / "tokenizer_config.json").is_file()
    return counter(base if present else None)


def mtld(texts: list[str]) -> float | None:
    """Mean MTLD (threshold 0.72) of the texts that have words."""
    from lexicalrichness import LexicalRichness

    values = []
    for text in texts:
        lex = LexicalRichness(text)
        if lex.words:
            values.append(lex.mtld(threshold=0.72))
    return float(np.mean(values)) if values else None


def distinct(texts: list[str], n: int) -> float | None:
    """Distinct-n: unique n-grams over all n-grams of lower-cased words, across the texts."""
    grams = [tuple(w[i : i + n]) for w in (re.findall(r"\w+", t.lower()) for t in texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def _embed(texts: list[str], model: str | None, fitted_on: list[str]) -> np.ndarray:
    """Unit-length vectors: mean-pooled hidden states of ``model``, or TF-IDF fitted on ``fitted_on``."""
    if model is None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectors = TfidfVectorizer().fit(fitted_on).transform(texts).toarray()
    else:
        import torch
        from transformers import AutoModel, AutoTokenizer

        tok, net = AutoTokenizer.from_pretrained(model), AutoModel.from_pretrained(model).eval()
        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), 16):
                batch = tok(
                    texts[start : start + 16], padding=True, truncation=True, max_length=512, return_tensors="pt"
                )
                hidden, mask = net(**batch).last_hidden_state, batch["attention_mask"].unsqueeze(-1)
                rows.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
        vectors = np.concatenate(rows)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1, norms)


def mean_pairwise_similarity(vectors: np.ndarray) -> float | None:
    n = len(vectors)
    if n < 2:
        return None
    sims = vectors @ vectors.T
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


class Lengths(NamedTuple):
    """A dataset's user turns per session and utterance lengths per role: what the plots and distances read."""

    turns: list[int]
    user: list[int]
    assistant: list[int]


def dataset_stats(records: list[dict], count, name: str = "") -> tuple[dict, Lengths]:
    """Everything but topic diversity, for one dataset; and its lengths."""
    from tqdm.auto import tqdm

    turns, session_tokens, lengths, user_texts, all_texts = [], [], {USER: [], ASSISTANT: []}, [], []
    reasons, ended, questions = Counter(), 0, 0
    for r in tqdm(records, desc=f"stats {name}", unit="session"):
        body = [m for m in r["messages"] if m["role"] in (USER, ASSISTANT) and not is_end_marker(m)]
        users = [m["content"] for m in body if m["role"] == USER]
        turns.append(len(users))
        session_tokens.append(sum(count(m["content"]) for m in body))
        for m in body:
            lengths[m["role"]].append(count(m["content"]))
            all_texts.append(m["content"])
        for i, text in enumerate(users):
            reasons[rejection(text, users[:i]) or "ok"] += 1
            questions += "?" in text
        user_texts += users
        ended += r["meta"].get("stop_reason") == "end_marker" or bool(
            r["messages"] and is_end_marker(r["messages"][-1])
        )
    n_user = max(len(user_texts), 1)
    utterances = lengths[USER] + lengths[ASSISTANT]
    stats = {
        "sessions": len(records),
        "mean_turns": _mean(turns),
        "mean_session_length": _mean(session_tokens),
        "mean_utterance_length": _mean(utterances),
        "mean_user_utterance_length": _mean(lengths[USER]),
        "mean_assistant_utterance_length": _mean(lengths[ASSISTANT]),
        "mtld": rounded(mtld(all_texts)),
        "mtld_user": rounded(mtld(user_texts)),
        "distinct_1": rounded(distinct(all_texts, 1)),
        "distinct_2": rounded(distinct(all_texts, 2)),
        "user_question_share": round(questions / n_user, 4),
        "user_role_flip_rate": round(reasons["role_flip"] / n_user, 4),
        "user_repeated_turn_rate": round(reasons["repeated_turn"] / n_user, 4),
        "end_marker_share": round(ended / max(len(records), 1), 4),
    }
    return stats, Lengths(turns, lengths[USER], lengths[ASSISTANT])


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def run_stats(
    config: PipelineConfig, datasets: list[str], names: list[str] | None = None, output: str | None = None
) -> dict:
    """Statistics of ``datasets`` side by side; writes stats.json, stats.md, PNG plots and report.html to ``output``."""
    cfg = config.eval
    names = names or [_default_name(Path(d)) for d in datasets]
    if len(names) != len(datasets) or len(set(names)) != len(names):
        raise ConfigError(f"--names: give one distinct name per dataset (got {names} for {len(datasets)} datasets)")
    layout = RunLayout(config)
    count, unit = stats_counter(config)
    loaded = {name: read_records(path) for name, path in zip(names, datasets)}
    measured = {name: dataset_stats(records, count, name) for name, (records, _) in loaded.items()}
    results = {name: stats | {"skipped_rows": dict(loaded[name][1])} for name, (stats, _) in measured.items()}

    rng = random.Random(config.run.seed)
    samples = {
        name: [_session_text(r) for r in rng.sample(records, min(cfg.stats_sample, len(records)))]
        for name, (records, _) in loaded.items()
    }
    everything = [t for texts in samples.values() for t in texts]
    for name, texts in samples.items():
        vectors = _embed(texts, cfg.embedding_model, everything) if texts else np.zeros((0, 1))
        results[name]["topic_similarity"] = rounded(mean_pairwise_similarity(vectors))
    method = (
        f"embeddings of {cfg.embedding_model} (mean pooled)" if cfg.embedding_model else "TF-IDF (offline fallback)"
    )

    out = Path(output) if output else layout.stats
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "datasets": dict(zip(names, datasets)),
        "length_unit": unit,
        "topic_similarity_method": method,
        "stats": results,
    }
    (out / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_stats_report(out, summary, {name: lengths for name, (_, lengths) in measured.items()})
    print(f"[eval stats] lengths in {unit}; topic similarity by {method} -> {out / 'report.html'}", flush=True)
    return summary


def _default_name(path: Path) -> str:
    """real for runs/x/real, realchat for runs/x/realchat/data, sim for sim.jsonl."""
    return path.stem if path.is_file() else (path.parent.name if path.name == "data" else path.name)


def _session_text(record: dict) -> str:
    return "\n".join(
        m["content"] for m in record["messages"] if m["role"] in (USER, ASSISTANT) and not is_end_marker(m)
    )
