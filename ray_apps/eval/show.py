"""`realm eval show`: scores from FastChat judgment files (ours or published ones), as FastChat's
show_result computes them, with bootstrap 95% confidence intervals, as a table and JSON.

Single: mean score per model for turn 1, turn 2, overall and per category (unparseable verdicts,
score -1, are left out). Pairwise: a game counts as a tie when either order says tie or the two
orders disagree; win rate, loss rate and the adjusted win rate (a tie is half a win).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..tables import markdown_table
from .fastchat import load_questions, read_jsonl


def _interval(values: list[float], rounds: int, rng: np.random.Generator) -> list[float]:
    """95% bootstrap interval of the mean of ``values``."""
    data = np.asarray(values, dtype=float)
    means = data[rng.integers(0, len(data), size=(rounds, len(data)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def single_results(
    records: list[dict], categories: dict[int, str] | None = None, rounds: int = 1000, seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    scores: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        if r["score"] != -1 and "error" not in r:
            scores[r["model"]].append(r)
    out = {}
    for model, rows in sorted(scores.items()):
        values = [r["score"] for r in rows]
        result = {
            "score": round(float(np.mean(values)), 4),
            "ci95": _interval(values, rounds, rng),
            "judgments": len(rows),
        }
        for turn in (1, 2):
            if turn_scores := [r["score"] for r in rows if r["turn"] == turn]:
                result[f"turn_{turn}"] = round(float(np.mean(turn_scores)), 4)
        if categories:
            by_category = defaultdict(list)
            for r in rows:
                by_category[categories.get(r["question_id"], "unknown")].append(r["score"])
            result["categories"] = {c: round(float(np.mean(v)), 4) for c, v in sorted(by_category.items())}
        out[model] = result
    return out


def pair_results(records: list[dict], baseline: str | None = None, rounds: int = 1000, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    outcomes: dict[str, list[float]] = defaultdict(list)  # 1 win, 0 loss, 0.5 tie, per game of the model
    for r in records:
        if "error" in (r["g1_winner"], r["g2_winner"]) or (baseline and baseline not in (r["model_1"], r["model_2"])):
            continue
        if r["g1_winner"] == "tie" or r["g1_winner"] != r["g2_winner"]:
            outcomes[r["model_1"]].append(0.5)
            outcomes[r["model_2"]].append(0.5)
        else:
            winner = r["model_1"] if r["g1_winner"] == "model_1" else r["model_2"]
            loser = r["model_2"] if winner == r["model_1"] else r["model_1"]
            outcomes[winner].append(1.0)
            outcomes[loser].append(0.0)
    out = {}
    for model, values in sorted(outcomes.items()):
        if model == baseline:
            continue
        n = len(values)
        win, loss = values.count(1.0), values.count(0.0)
        out[model] = {
            "win": win,
            "loss": loss,
            "tie": n - win - loss,
            "win_rate": round(win / n, 4),
            "loss_rate": round(loss / n, 4),
            "win_rate_adjusted": round(float(np.mean(values)), 4),
            "ci95": _interval(values, rounds, rng),
        }
    return out


def _table(results: dict, columns: list[str]) -> str:
    rows = sorted(results.items(), key=lambda kv: -kv[1].get(columns[0], 0))
    cells = [
        [model, *(f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in columns)]
        for model, r in rows
    ]
    return markdown_table(["model", *columns], cells)


def run_show(
    files: list[str],
    questions: str | None = None,
    baseline: str | None = None,
    output: str | None = None,
    rounds: int = 1000,
) -> dict:
    """Results of every judgment file, printed as tables; written as JSON to ``output`` when given."""
    categories = {q["question_id"]: q["category"] for q in load_questions(questions)} if questions else None
    report = {}
    for path in files:
        records = read_jsonl(path)
        if records and "score" in records[0]:
            results = single_results(records, categories, rounds)
            table = _table(
                {m: r | {"ci95": "{:.2f}-{:.2f}".format(*r["ci95"])} for m, r in results.items()},
                ["score", "ci95", "turn_1", "turn_2", "judgments"],
            )
        else:
            results = pair_results(records, baseline, rounds)
            table = _table(
                {m: r | {"ci95": "{:.2f}-{:.2f}".format(*r["ci95"])} for m, r in results.items()},
                ["win_rate_adjusted", "ci95", "win_rate", "loss_rate", "win", "loss", "tie"],
            )
        print(f"\n{path}\n{table}", flush=True)
        report[str(path)] = results
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(report, indent=2) + "\n")
        print(f"[eval show] -> {output}", flush=True)
    return report
