"""The user simulator's figures, each declared once: its name, its label, how it is read from what `realm eval
simulator` measured, its target if it has one, and which value is closer to the real people.

Everything else reads ``FIGURES``: the values and ``targets`` of ``simulator.json`` (``values``,
``check_targets``), the trained-vs-prompted ``comparison`` (``compare_simulators``), the report's fidelity table,
the figures table of docs/usage.md (``markdown_table``) and the tests. Adding a figure is one ``Figure`` here
(reading a number ``compare_sessions`` or the scorer measures) plus its test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

Pair = tuple[float | None, float | None]  # (the real people's value, the simulator's)


class Measured(NamedTuple):
    """What a simulator's figures are read from, as ``simulator.json`` holds it: its scores on held-out real
    conversations, the untrained base's, and its sessions next to the real ones (``compare_sessions``); None
    where not measured."""

    score: dict | None = None
    base: dict | None = None
    sessions: dict | None = None


def _sessions(read: Callable[[dict], Pair]) -> Callable[[Measured], Pair]:
    return lambda m: read(m.sessions) if m.sessions else (None, None)


def _stat(name: str) -> Callable[[Measured], Pair]:
    """A dataset statistic (``stats.dataset_stats``) of the real sessions and of the simulated ones."""
    return _sessions(lambda s: (s["real"][name], s["simulated"][name]))


def _written(key: str, real_stat: str | None = None) -> Callable[[Measured], Pair]:
    """A figure of the simulated sessions (a rate over every user turn written), beside a statistic of the real."""
    return _sessions(lambda s: (s["real"][real_stat] if real_stat else None, s[key]))


def _both(key: str) -> Callable[[Measured], Pair]:
    """A figure ``compare_sessions`` measured for both, as ``{"real": ..., "simulated": ...}`` (absent: unmeasured)."""
    return _sessions(lambda s: (s[key]["real"], s[key]["simulated"]) if key in s else (None, None))


def _score(*path: str) -> Callable[[Measured], Pair]:
    """A number of the simulator's score on held-out conversations (``scoring.score_human_turns``)."""

    def read(m: Measured) -> Pair:
        value = m.score
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        return None, value

    return read


def _ratio(a: float | None, b: float | None, digits: int = 4) -> float | None:
    return round(a / b, digits) if a is not None and b else None


@dataclass(frozen=True)
class Figure:
    name: str  # the comparison's row; the key in simulator.json too, with "_ratio" when ``ratio_to`` is set
    label: str  # what it means, as the report and the comparison say it
    read: Callable[[Measured], Pair]
    closer: str = "real"  # the simulator closer to the real people: nearest "real" (their value), "high" or "low"
    ratio_to: str | None = None  # judged as the simulator's value over the "real" people's or the untrained "base"'s
    low: float | None = None  # the target: at least this
    high: float | None = None  # and at most this
    note: str = ""  # said beside the target in the docs

    @property
    def key(self) -> str:
        return f"{self.name}_ratio" if self.ratio_to else self.name

    @property
    def has_target(self) -> bool:
        return self.low is not None or self.high is not None

    def value(self, m: Measured) -> float | None:
        """The figure's value: the simulator's, or its ratio (``ratio_to``)."""
        real, simulated = self.read(m)
        if self.ratio_to == "real":
            return _ratio(simulated, real)
        if self.ratio_to == "base":
            return _ratio(simulated, self.read(Measured(score=m.base))[1], 6)  # a trained simulator's is near 0
        return simulated

    def check(self, value: float | None) -> dict:
        met = (
            value is not None and (self.low is None or value >= self.low) and (self.high is None or value <= self.high)
        )
        return {"value": value, "min": self.low, "max": self.high, "met": met, "meaning": self.label}


FIGURES = (
    Figure(
        "user_utterance_length",
        "mean user-utterance length",
        _stat("mean_user_utterance_length"),
        "real",
        "real",
        0.67,
        1.5,
    ),
    Figure("user_turns", "mean user turns per session", _stat("mean_turns"), "real", "real", 0.7, 1.3),
    Figure(
        "question_share", "share of user turns asking a question", _stat("user_question_share"), "real", "real", 0.75
    ),
    Figure(
        "end_marker_share",
        "sessions the simulator ended with its end marker (failed ones counted)",
        _written("end_marker_share"),
        "high",
        low=0.6,
    ),
    Figure(
        "perplexity",
        "perplexity of held-out human turns (its ratio: over the untrained base's)",
        _score("perplexity"),
        "low",
        "base",
        high=0.15,
    ),
    Figure(
        "termination_f1",
        "termination F1 on held-out conversations (the likelier of ending and going on)",
        _score("termination", "likelier", "f1"),
        "high",
        low=0.6,
        note="UserLM-8b reports about 0.64 on WildChat",
    ),
    Figure(
        "termination_f1_sampled",
        "termination F1 on held-out conversations, sampled as a rollout does",
        _score("termination", "sampled", "f1"),
        "high",
    ),
    Figure(
        "termination_f1_top_token",
        "termination F1 on held-out conversations, the end marker as the top token",
        _score("termination", "top_token", "f1"),
        "high",
    ),
    Figure(
        "role_flip_rate",
        "user turns that read like assistant answers (of all written)",
        _written("role_flip_rate", "user_role_flip_rate"),
        high=0.05,
    ),
    Figure(
        "repeated_turn_rate",
        "user turns repeating an earlier one (of all written)",
        _written("repeated_turn_rate", "user_repeated_turn_rate"),
    ),
    Figure("opening_distinct_share", "distinct openings / sessions", _both("opening_distinct_share")),
    Figure("opening_distinct_2", "distinct-2 of openings", _both("opening_distinct_2")),
    Figure(
        "user_utterance_length_wasserstein",
        "distance to the real user-utterance lengths (Wasserstein)",
        _written("user_utterance_length_wasserstein"),
        "low",
    ),
    Figure(
        "user_turns_wasserstein",
        "distance to the real user turns per session (Wasserstein)",
        _written("user_turns_wasserstein"),
        "low",
    ),
    Figure("human_like_ratio", "user turns the detector calls human (eval.human_detector)", _both("human_like_ratio")),
)


def values(m: Measured) -> dict[str, float | None]:
    """Every figure's value under its key (None where not measured): the top level of simulator.json."""
    return {f.key: f.value(m) for f in FIGURES}


def check_targets(m: Measured) -> dict:
    """Each target with its value (None when not measured) and whether it is met."""
    return {f.key: f.check(f.value(m)) for f in FIGURES if f.has_target}


def bound_text(target: dict) -> str:
    """A checked target's bounds as text: ``>= 0.67 and <= 1.5``."""
    return " and ".join(f"{sign} {v}" for sign, v in ((">=", target["min"]), ("<=", target["max"])) if v is not None)


def _closer(rule: str, real: float | None, pair: dict[str, float | None]) -> str | None:
    if None in pair.values() or (rule == "real" and real is None):
        return None
    distance = {name: abs(v - real) if rule == "real" else (-v if rule == "high" else v) for name, v in pair.items()}
    trained, prompted = distance.values()
    return "tie" if trained == prompted else min(distance, key=distance.get)


def compare_simulators(trained: Measured, prompted: Measured) -> list[dict]:
    """Each figure measured for either simulator: the real people's value and both simulators', its target and
    whether each meets it, and which simulator is closer to the real people."""
    rows = []
    for figure in FIGURES:
        (real, ours), (real_too, theirs) = figure.read(trained), figure.read(prompted)
        if ours is None and theirs is None:
            continue
        real, pair = real if real is not None else real_too, {"trained": ours, "prompted": theirs}
        judged = (("trained", trained), ("prompted", prompted))
        rows.append(
            {
                "figure": figure.name,
                "meaning": figure.label,
                "real": real,
                **pair,
                "target": {"key": figure.key, "min": figure.low, "max": figure.high} if figure.has_target else None,
                "met": {name: figure.check(figure.value(m))["met"] for name, m in judged}
                if figure.has_target
                else None,
                "closer": _closer(figure.closer, real, pair),
            }
        )
    return rows


def markdown_table() -> str:
    """The figures as docs/usage.md lists them: key in simulator.json, meaning, target."""
    rows = ["| key in `simulator.json` | meaning | target |", "|---|---|---|"]
    for f in FIGURES:
        bound = bound_text({"min": f.low, "max": f.high}) if f.has_target else ""
        meaning = f.label + (" (simulated / real)" if f.ratio_to == "real" else "")
        rows.append(f"| `{f.key}` | {meaning} | {bound}{f' ({f.note})' if f.note else ''} |")
    return "\n".join(rows)
