"""The simulator's sessions next to real ones, measured the way user-simulator papers measure them
(UserLM, "Flipping the Dialogue", 2025; PlatoLM). ``figures.py`` declares the figures read from them.

Rates are over every user turn the simulator wrote, kept or resampled by the rollout's filters (each
rollout record counts its resampled turns): a filter that hides a bad turn does not improve them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..conversation import USER, is_end_marker, opening
from ..layout import RolloutData
from ..outcomes import Outcome
from ..records import read_records
from .stats import dataset_stats, distinct, rounded


def read_rollout(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(sessions, failures) of a `realm rollout` output directory, or of a file of records (no failures)."""
    data = RolloutData(path)
    if not data.data.is_dir():
        return read_records(path)[0], []
    failures = data.failures.read_text().splitlines() if data.failures.is_file() else []
    return read_records(data.data)[0], [json.loads(line) for line in failures if line.strip()]


def user_texts(records: list[dict]) -> list[str]:
    """Every user turn of ``records`` but end markers."""
    return [m["content"] for r in records for m in r["messages"] if m["role"] == USER and not is_end_marker(m)]


def _openings(records: list[dict]) -> list[str]:
    """The first user turn of each conversation (not of a later segment of one)."""
    firsts = [opening(r["messages"]) for r in records if (r.get("meta") or {}).get("segment", 0) == 0]
    return [text for text in firsts if text is not None]


def _normal(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def compare_sessions(real: list[dict], sessions: list[dict], failures: list[dict], count) -> dict:
    """Real vs simulated user behaviour: the dataset statistics of both, the simulator's rates over every user turn
    it wrote, its openings' diversity and distribution distances."""
    (ref, ref_lengths), (sim, sim_lengths) = (
        dataset_stats(real, count, "real"),
        dataset_stats(sessions, count, "simulated"),
    )
    written = len(user_texts(sessions))
    outcomes = [Outcome(record) for record in [*sessions, *failures]]
    resampled: Counter[str] = Counter()
    for outcome in outcomes:
        resampled.update(outcome.rejected_user_turns)
    drawn = written + sum(resampled.values())  # every user turn the simulator wrote, kept or not
    ended = sum(o.stop_reason == "end_marker" for o in outcomes)
    openings = {"real": _openings(real), "simulated": _openings(sessions)}
    # a rejected duplicate opening was written too: it counts as a session's opening that is not distinct
    opening_draws = {"real": len(openings["real"]), "simulated": len(openings["simulated"])}
    opening_draws["simulated"] += resampled.get("duplicate_opening", 0)
    return {
        "real": ref,
        "simulated": sim,
        "sessions": len(sessions),
        "failed_sessions": len(failures),
        "end_marker_share": round(ended / max(len(sessions) + len(failures), 1), 4),
        "role_flip_rate": round(
            (sim["user_role_flip_rate"] * written + resampled.get("role_flip", 0)) / max(drawn, 1), 4
        ),
        "repeated_turn_rate": round(
            (sim["user_repeated_turn_rate"] * written + resampled.get("repeated_turn", 0)) / max(drawn, 1), 4
        ),
        "resampled_user_turns": dict(sorted(resampled.items(), key=lambda kv: -kv[1])),
        "user_turns_written": drawn,
        "opening_distinct_share": {
            name: round(len({_normal(t) for t in texts}) / max(opening_draws[name], 1), 4)
            for name, texts in openings.items()
        },
        "opening_distinct_1": {name: rounded(distinct(texts, 1)) for name, texts in openings.items()},
        "opening_distinct_2": {name: rounded(distinct(texts, 2)) for name, texts in openings.items()},
        "user_utterance_length_wasserstein": _distance(ref_lengths.user, sim_lengths.user),
        "user_turns_wasserstein": _distance(ref_lengths.turns, sim_lengths.turns),
    }


def _distance(real: list[int], simulated: list[int]) -> float | None:
    """The Wasserstein distance between two samples (None when one is empty)."""
    from scipy.stats import wasserstein_distance

    return round(float(wasserstein_distance(real, simulated)), 4) if real and simulated else None
