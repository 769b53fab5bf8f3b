"""`realm eval simulator`: how well the user simulator imitates real people, offline.

On held-out real conversations (their simulator view): its perplexity on the human turns next to the
untrained base model's, and its termination F1 (``scoring.py``). On the sessions it simulated (the
rollout's output), next to the real ones: lengths, turns, questions, openings, role flips, repetition
and the end marker (``fidelity.py``). Every figure, and each target with whether it is met, goes to
``eval/simulator.json`` under stable keys.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError, PipelineConfig
from ..layout import RunLayout
from ..models.base import base_reference, resolve_model
from ..records import read_records
from .detector import human_like_ratio
from .fidelity import bound_text, check_targets, compare_sessions, read_rollout, user_texts
from .scoring import Sampling, score_human_turns
from .stats import stats_counter

#: the figures of ``compare_sessions`` copied to the top level of simulator.json
SESSION_KEYS = (
    "user_utterance_length_ratio",
    "user_turns_ratio",
    "question_share_ratio",
    "end_marker_share",
    "role_flip_rate",
    "repeated_turn_rate",
    "user_utterance_length_wasserstein",
    "user_turns_wasserstein",
)


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


def run_simulator(
    config: PipelineConfig, output: str | None = None, simulated: str | None = None, real: str | None = None
) -> dict:
    """Score the simulator; ``simulated`` (a rollout output, default the run's) and ``real`` (a dataset,
    default the prepared train split) are compared when the rollout exists."""
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
    termination = result["simulator"]["termination"]
    values = {
        "perplexity_ratio": round(result["simulator"]["perplexity"] / result["base"]["perplexity"], 6),
        "termination_f1": termination["likelier"]["f1"],
        "termination_f1_top_token": termination["top_token"]["f1"],
        "termination_f1_sampled": termination["sampled"]["f1"],
    }
    simulated = simulated or str(layout.realchat.root)
    if Path(simulated).exists():
        real = real or str(layout.real.split("train"))
        (sessions, failures), real_records = read_rollout(simulated), read_records(real)[0]
        compared = compare_sessions(real_records, sessions, failures, stats_counter(config)[0])
        result["sessions"] = {"simulated": simulated, "real": real} | compared
        values |= {k: compared[k] for k in SESSION_KEYS}
        values["opening_distinct_share"] = compared["opening_distinct_share"]["simulated"]
        if cfg.human_detector:
            result["human_like_ratio"] = {
                name: human_like_ratio(cfg.human_detector, user_texts(records), cfg.human_label)
                for name, records in (("real", real_records), ("simulated", sessions))
            }
            values["human_like_ratio"] = result["human_like_ratio"]["simulated"]
    else:
        print(f"[eval simulator] no simulated sessions at {simulated}: session figures left out", flush=True)
    result |= values
    result["targets"] = check_targets(values)
    out = Path(output) if output else layout.simulator
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"[eval simulator] human-turn perplexity on {len(records)} held-out conversations: "
        f"simulator {result['simulator']['perplexity']}, untrained base {result['base']['perplexity']}; "
        f"termination F1 {values['termination_f1']} (sampled {values['termination_f1_sampled']}) -> {out}",
        flush=True,
    )
    for key, target in result["targets"].items():
        verdict = "met" if target["met"] else ("not measured" if target["value"] is None else "NOT MET")
        print(f"[eval simulator] target {key} = {target['value']} ({bound_text(target)}): {verdict}", flush=True)
    return result
