"""`realm eval simulator`: how well the user simulator imitates real people, offline.

On held-out real conversations (their simulator view): its perplexity on the human turns next to the
untrained base model's, and its termination F1 (``scoring.py``). On the sessions it simulated (the
rollout's output), next to the real ones: lengths, turns, questions, openings, role flips, repetition
and the end marker (``fidelity.py``). Every figure ``figures.py`` declares, and each target with whether
it is met, goes to ``eval/simulator.json`` under stable keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError, PipelineConfig
from ..layout import RunLayout
from ..models.base import base_reference, resolve_model
from ..records import read_records
from .detector import human_like_ratio
from .fidelity import compare_sessions, read_rollout, user_texts
from .figures import Measured, bound_text, check_targets, compare_simulators, values
from .scoring import Sampling, score_human_turns
from .stats import stats_counter


def _models(config: PipelineConfig) -> dict[str, str]:
    """The simulator and the base it was trained from (``model.base``, or the tiny base), resolved."""
    cfg, layout, models = config.eval, RunLayout(config), {}
    for role, key, configured, default, made_here in (
        ("simulator", "eval.simulator_model", cfg.simulator_model, str(layout.model("usergpt")), True),
        ("base", "eval.simulator_base", cfg.simulator_base, base_reference(config), config.model.base is None),
    ):
        if not configured and made_here and not Path(default).exists():
            raise ConfigError(f"{key}: no model at {default} (train it first, or set {key} to a path or hub id)")
        models[role] = resolve_model(configured or default, config)
    return models


def _sessions(config: PipelineConfig, simulated: str, real_records: list[dict]) -> dict:
    """The sessions a simulator wrote next to the real ones (``compare_sessions``; with ``eval.human_detector``,
    the human-like ratio of both)."""
    (sessions, failures), cfg = read_rollout(simulated), config.eval
    compared = compare_sessions(real_records, sessions, failures, stats_counter(config)[0])
    if cfg.human_detector:
        compared["human_like_ratio"] = {
            name: human_like_ratio(cfg.human_detector, user_texts(records), cfg.human_label)
            for name, records in (("real", real_records), ("simulated", sessions))
        }
    return compared


def run_simulator(
    config: PipelineConfig, output: str | None = None, simulated: str | None = None, real: str | None = None
) -> dict:
    """Score the simulator; ``simulated`` (a rollout output, default the run's) and ``real`` (a dataset,
    default the prepared train split) are compared when the rollout exists. With ``rollout.compare_with``, the
    prompted simulator is scored and compared alike (``prompted``), and ``comparison`` sets the two side by side."""
    cfg, layout = config.eval, RunLayout(config)
    models = _models(config)
    heldout = cfg.heldout or str(layout.heldout)
    records, skipped = read_records(heldout)
    user = config.rollout.user
    sampling = Sampling(user.temperature, user.top_p, seed=config.run.seed)
    result = {"heldout": heldout, "conversations": len(records), "skipped_rows": dict(skipped)}
    for role, path in models.items():
        result[role] = score_human_turns(
            path, records, config.train.max_length, config.train.simulator_prompt, sampling, config.model.chat_template
        )
    simulated = simulated or str(layout.realchat.root)
    real = real or str(layout.real.split("train"))
    real_records = read_records(real)[0] if Path(simulated).exists() or config.rollout.compare_with else []
    if Path(simulated).exists():
        result["sessions"] = {"simulated": simulated, "real": real} | _sessions(config, simulated, real_records)
    else:
        print(f"[eval simulator] no simulated sessions at {simulated}: session figures left out", flush=True)
    measured = Measured(result["simulator"], result["base"], result.get("sessions"))
    result |= values(measured) | {"targets": check_targets(measured)}
    if config.rollout.compare_with:
        result["prompted"], prompted = _prompted(
            config, models["base"], records, sampling, result["base"], real_records
        )
        result["comparison"] = compare_simulators(measured, prompted)
    out = Path(output) if output else layout.simulator
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"[eval simulator] human-turn perplexity on {len(records)} held-out conversations: "
        f"simulator {result['simulator']['perplexity']}, untrained base {result['base']['perplexity']}; "
        f"termination F1 {result['termination_f1']} (sampled {result['termination_f1_sampled']}) -> {out}",
        flush=True,
    )
    for key, target in result["targets"].items():
        verdict = "met" if target["met"] else ("not measured" if target["value"] is None else "NOT MET")
        print(f"[eval simulator] target {key} = {target['value']} ({bound_text(target)}): {verdict}", flush=True)
    for row in result.get("comparison", []):
        print(
            f"[eval simulator] {row['figure']}: real {row['real']}, trained {row['trained']}, prompted "
            f"{row['prompted']}; closer to the real people: {row['closer'] or '-'}",
            flush=True,
        )
    return result


def _prompted(
    config: PipelineConfig, base: str, records: list[dict], sampling: Sampling, base_score: dict, real_records: list
) -> tuple[dict, Measured]:
    """The prompted simulator (``rollout.compare_with``) and its sessions; when it is model.base (``base``) as it is,
    its scores too, with its first persona as the system prompt and the end marker as the text it was told to
    write. Returns (its part of simulator.json, what its figures are read from)."""
    prompted, layout = config.rollout.prompted(), RunLayout(config)
    persona, user = prompted.personas[0], prompted.user
    part = {"model": user.model, "persona": persona}
    if user.model == "base" and user.base_url is None:  # its weights are here
        sampling = Sampling(user.temperature, user.top_p, sampling.samples, sampling.seed)
        score = score_human_turns(
            base, records, config.train.max_length, persona, sampling, config.model.chat_template, marker_token=False
        )
        part |= {"weights": base, "score": score}
    else:
        print(
            f"[eval simulator] prompted simulator {user.model}: not model.base, so not scored (no weights here)",
            flush=True,
        )
    if layout.prompted.root.exists():
        part["sessions"] = {"simulated": str(layout.prompted.root)} | _sessions(
            config, str(layout.prompted.root), real_records
        )
    else:
        print(
            f"[eval simulator] no prompted sessions at {layout.prompted.root}: its session figures left out", flush=True
        )
    measured = Measured(part.get("score"), base_score, part.get("sessions"))
    return part | values(measured) | {"targets": check_targets(measured)}, measured
