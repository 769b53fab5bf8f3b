"""The simulator's sessions next to real ones, measured the way user-simulator papers measure them
(UserLM, "Flipping the Dialogue", 2025; PlatoLM), the targets the embedded default must reach, and two
simulators (a trained one and a prompted one) set side by side, figure by figure.

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


@dataclass(frozen=True)
class Figure:
    """A figure shown for the real people, the trained and the prompted simulator (``compare_simulators``)."""

    key: str
    meaning: str
    closer: str  # which value is closer to the real people: "real" (nearest theirs), "high" or "low"
    stat: str | None = None  # the stat of compare_sessions' "real" and "simulated" it shows
    target: str | None = None  # the TARGETS key that judges it


COMPARED = (
    Figure(
        "user_utterance_length",
        "mean user-utterance length",
        "real",
        "mean_user_utterance_length",
        "user_utterance_length_ratio",
    ),
    Figure("user_turns", "mean user turns per session", "real", "mean_turns", "user_turns_ratio"),
    Figure(
        "question_share", "share of user turns asking a question", "real", "user_question_share", "question_share_ratio"
    ),
    Figure("end_marker_share", "sessions the simulator ended with its end marker", "high", None, "end_marker_share"),
    Figure("termination_f1", "termination F1 on held-out conversations", "high", None, "termination_f1"),
    Figure("termination_f1_sampled", "termination F1 on held-out conversations, sampled as a rollout does", "high"),
    Figure("perplexity", "perplexity of held-out human turns", "low", None, "perplexity_ratio"),
    Figure(
        "role_flip_rate", "user turns that read like assistant answers", "real", "user_role_flip_rate", "role_flip_rate"
    ),
    Figure("repeated_turn_rate", "user turns repeating an earlier one", "real", "user_repeated_turn_rate"),
    Figure("opening_distinct_share", "distinct openings / sessions", "real"),
    Figure("opening_distinct_2", "distinct-2 of openings", "real"),
    Figure("user_utterance_length_wasserstein", "distance to the real user-utterance lengths (Wasserstein)", "low"),
    Figure("user_turns_wasserstein", "distance to the real user turns per session (Wasserstein)", "low"),
    Figure("human_like_ratio", "user turns the detector calls human", "real"),
)


def _figure(figure: Figure, part: dict) -> tuple[float | None, float | None]:
    """(the real people's value, the simulator's) of ``figure`` in ``part`` (its values, score and sessions)."""
    values, sessions = part["values"], part.get("sessions") or {}
    if figure.key == "perplexity":
        return None, (part.get("score") or {}).get("perplexity")
    if figure.stat:
        simulated = values.get(figure.key)  # a rate among the figures counts the resampled turns too
        if not sessions:
            return None, simulated
        return sessions["real"][figure.stat], simulated if simulated is not None else sessions["simulated"][figure.stat]
    if isinstance(sessions.get(figure.key), dict):
        return sessions[figure.key]["real"], sessions[figure.key]["simulated"]
    return None, values.get(figure.key)


def _closer(rule: str, real: float | None, values: dict[str, float | None]) -> str | None:
    if None in values.values() or (rule == "real" and real is None):
        return None
    distance = {name: abs(v - real) if rule == "real" else (-v if rule == "high" else v) for name, v in values.items()}
    trained, prompted = distance.values()
    return "tie" if trained == prompted else min(distance, key=distance.get)


def compare_simulators(trained: dict, prompted: dict) -> list[dict]:
    """Each figure for the real people and both simulators (each given as its ``values``, ``score`` and
    ``sessions``), its target and whether each meets it, and which simulator is closer to the real people."""
    targets = {t.key: t for t in TARGETS}
    rows = []
    for figure in COMPARED:
        (real, ours), (real_too, theirs) = _figure(figure, trained), _figure(figure, prompted)
        if ours is None and theirs is None:
            continue
        real, values = real if real is not None else real_too, {"trained": ours, "prompted": theirs}
        target = targets.get(figure.target)
        rows.append(
            {
                "figure": figure.key,
                "meaning": figure.meaning,
                "real": real,
                **values,
                "target": {"key": target.key, "min": target.low, "max": target.high} if target else None,
                "met": {
                    name: target.check(part["values"].get(target.key))["met"]
                    for name, part in (("trained", trained), ("prompted", prompted))
                }
                if target
                else None,
                "closer": _closer(figure.closer, real, values),
            }
        )
    return rows


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
