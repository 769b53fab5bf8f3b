"""The simulator's sessions next to real ones, measured the way user-simulator papers measure them
(UserLM, "Flipping the Dialogue", 2025; PlatoLM), and the targets the embedded default must reach.

Rates are over every user turn the simulator wrote, kept or resampled by the rollout's filters (each
rollout record counts its resampled turns): a filter that hides a bad turn does not improve them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..conversation import USER, is_end_marker
from ..layout import RolloutData
from ..records import read_records
from .stats import dataset_stats, distinct, rounded


@dataclass(frozen=True)
class Target:
    key: str
    low: float | None
    high: float | None
    meaning: str

    def check(self, value: float | None) -> dict:
        met = (
            value is not None and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        )
        return {"value": value, "min": self.low, "max": self.high, "met": met, "meaning": self.meaning}


TARGETS = (
    Target("user_utterance_length_ratio", 0.67, 1.5, "simulated / real mean user-utterance length"),
    Target("user_turns_ratio", 0.7, 1.3, "simulated / real mean user turns per session"),
    Target("end_marker_share", 0.6, None, "sessions the simulator ended with its end marker"),
    Target("question_share_ratio", 0.75, None, "simulated / real share of user turns that ask a question"),
    Target("perplexity_ratio", None, 0.15, "simulator / untrained base perplexity on held-out human turns"),
    Target("termination_f1", 0.6, None, "F1 of ending exactly where held-out real conversations end"),
    Target("role_flip_rate", None, 0.05, "simulated user turns that read like assistant answers"),
)


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
    return [
        next(m["content"] for m in r["messages"] if m["role"] == USER)
        for r in records
        if (r.get("meta") or {}).get("segment", 0) == 0 and any(m["role"] == USER for m in r["messages"])
    ]


def _normal(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def compare_sessions(real: list[dict], sessions: list[dict], failures: list[dict], count) -> dict:
    """Real vs simulated user behaviour: ratios, the raw rates of the simulator, distribution distances."""
    from scipy.stats import wasserstein_distance

    stats = {"real": dataset_stats(real, count, "real"), "simulated": dataset_stats(sessions, count, "simulated")}
    written = len(user_texts(sessions))
    resampled: dict[str, int] = {}
    for record in [*sessions, *failures]:
        rejected = record.get("rejected_user_turns") or (record.get("meta") or {}).get("rejected_user_turns") or {}
        for reason, n in rejected.items():
            resampled[reason] = resampled.get(reason, 0) + n
    drawn = written + sum(resampled.values())  # every user turn the simulator wrote, kept or not
    ended = sum((r.get("meta") or {}).get("stop_reason") == "end_marker" for r in sessions)
    openings = {"real": _openings(real), "simulated": _openings(sessions)}
    # a rejected duplicate opening was written too: it counts as a session's opening that is not distinct
    opening_draws = {"real": len(openings["real"]), "simulated": len(openings["simulated"])}
    opening_draws["simulated"] += resampled.get("duplicate_opening", 0)
    sim, ref = stats["simulated"], stats["real"]
    return {
        "real": {k: v for k, v in ref.items() if not k.startswith("_")},
        "simulated": {k: v for k, v in sim.items() if not k.startswith("_")},
        "sessions": len(sessions),
        "failed_sessions": len(failures),
        "user_utterance_length_ratio": _ratio(sim["mean_user_utterance_length"], ref["mean_user_utterance_length"]),
        "user_turns_ratio": _ratio(sim["mean_turns"], ref["mean_turns"]),
        "question_share_ratio": _ratio(sim["user_question_share"], ref["user_question_share"]),
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
        "user_utterance_length_wasserstein": round(
            float(wasserstein_distance(ref["_utterances"][USER], sim["_utterances"][USER])), 4
        )
        if sim["_utterances"][USER] and ref["_utterances"][USER]
        else None,
        "user_turns_wasserstein": round(float(wasserstein_distance(ref["_turns"], sim["_turns"])), 4)
        if sim["_turns"] and ref["_turns"]
        else None,
    }


def bound_text(target: dict) -> str:
    """A checked target's bounds as text: ``>= 0.67 and <= 1.5``."""
    return " and ".join(f"{sign} {v}" for sign, v in ((">=", target["min"]), ("<=", target["max"])) if v is not None)


def check_targets(values: dict) -> dict:
    """Each target with its value (None when not measured) and whether it is met."""
    return {t.key: t.check(values.get(t.key)) for t in TARGETS}
