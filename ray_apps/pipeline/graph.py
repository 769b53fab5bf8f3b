"""The pipeline's stages as what each reads and writes; the order between them and their fingerprints follow.

A stage declares the config keys it reads (dotted; a section means all of it), the files and directories it reads
(``inputs``) and those it writes (``outputs``). A stage comes after every stage that writes one of its inputs (or a
directory holding one). Its fingerprint hashes the values of its keys (a GGUF file by its bytes) and the
fingerprints of the stages it comes after: a changed key redoes the stages that read it and every stage after
them. ``UNREAD`` lists the keys no stage's output depends on; a test checks that every key of the schema is read
by a stage or listed there, so a new key is never silently left out of the fingerprints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, PipelineConfig
from ..layout import RunLayout
from ..models.base import is_gguf, model_identity
from . import steps

ASSISTANTS = ("baseline", "realm")  # the assistant trained on real sessions, and the one trained on simulated ones

# What no stage's output depends on, and why.
UNREAD = (
    "run.name",  # names the Ray Train runs; a train stage's run is also named after its fingerprint
    "run.workdir",  # where the outputs are: another one is another run
    "run.console",  # what the console shows
    "ray",  # which cluster runs it
    "serve",  # how the models are served (engine, replicas): the same models answer
    "eval.models",  # the pipeline answers with its two assistants (ASSISTANTS)
    "eval.actors",  # how many actors send the requests
    "eval.requests_per_actor",
)

# The eval keys each eval stage reads: a change to the answers or the judge leaves the simulator's figures be.
SIMULATOR_EVAL = ("stats_tokenizer", "embedding_model", "stats_sample", "simulator_model", "simulator_base")
SIMULATOR_EVAL += ("heldout", "human_detector", "human_label", "output")
ASSISTANTS_EVAL = ("output", "benchmarks", "answer", "judge", "judge_prompts", "judge_mode", "baseline_model")
ASSISTANTS_EVAL += ("parse_retries", "max_failure_fraction", "bootstrap_rounds")


@dataclass
class Stage:
    name: str
    config: PipelineConfig  # what it runs with: its keys are read from it (a train stage's has its model's keys)
    reads: tuple[str, ...]  # config keys
    inputs: tuple[Path, ...]  # what it reads from disk
    outputs: tuple[Path, ...]  # what it writes (cleared when its fingerprint changes)
    run: Callable[[str], dict]  # called with its fingerprint
    after: tuple[str, ...] = ()  # the stages that write its inputs (derived by ``stage_graph``)


def stage_graph(config: PipelineConfig, layout: RunLayout) -> list[Stage]:
    """The stages in the order they run, each with the stages it comes after."""
    stages = _declared(config, layout)
    for i, stage in enumerate(stages):
        stage.after = tuple(s.name for s in stages[:i] if _writes_any(s, stage.inputs))
        if late := [s.name for s in stages[i + 1 :] if _writes_any(s, stage.inputs)]:
            raise AssertionError(f"stage {stage.name} reads what {late} write after it")
    return stages


def _writes_any(stage: Stage, paths: tuple[Path, ...]) -> bool:
    return any(path == out or out in path.parents for path in paths for out in stage.outputs)


def fingerprints(stages: list[Stage]) -> dict[str, str]:
    """Each stage's fingerprint: the values of the keys it reads and the fingerprints of the stages before it."""
    done: dict[str, str] = {}
    for stage in stages:
        dumped = stage.config.model_dump(mode="json")
        inputs = {"reads": {key: _identity(_value(dumped, key)) for key in stage.reads}}
        inputs["after"] = {name: done[name] for name in stage.after}
        done[stage.name] = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return done


def _value(dumped: dict, key: str):
    value = dumped
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ConfigError(f"{key}: a stage reads a key the config has not")
        value = value[part]
    return value


def _identity(value):
    """``value`` with each GGUF file it names as the hash of its bytes (they decide the weights)."""
    if isinstance(value, dict):
        return {k: _identity(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_identity(v) for v in value]
    return model_identity(value) if isinstance(value, str) and is_gguf(value) else value


def _declared(config: PipelineConfig, layout: RunLayout) -> list[Stage]:
    real, realchat, tiny = layout.real.root, layout.realchat.root, layout.model("base")
    base = (tiny,) if config.model.base is None else ()  # the tiny base an earlier stage writes, or model.base
    # segments are measured in the base model's tokens, unless a tokenizer is given
    tokenizer = () if config.prepare.segment.tokenizer else ("model.base",)
    trained_user = config.rollout.model_copy(update={"compare_with": None})  # the prompted one is a stage of its own
    stages = [
        Stage(
            "prepare",
            config,
            ("prepare", "run.seed", "train.simulator_prompt", *tokenizer),  # the prompt takes room in each segment
            (),
            (real,),
            lambda _: steps.prepare(config, real),
        )
    ]
    if config.model.base is None:
        stages.append(Stage("init-model", config, ("model",), (real,), (tiny,), lambda _: steps.init_model(config)))
    stages += [
        _train_stage(config, layout, "usergpt", "user", real),
        _train_stage(config, layout, "baseline", "assistant", real),
        _rollout_stage("rollout", config.model_copy(update={"rollout": trained_user}), layout, realchat),
    ]
    if config.rollout.compare_with:
        prompted = config.model_copy(update={"rollout": config.rollout.prompted()})
        stages.append(_rollout_stage("rollout-prompted", prompted, layout, layout.prompted.root))
    rollouts = (realchat, layout.prompted.root) if config.rollout.compare_with else (realchat,)
    simulator = () if config.eval.simulator_model else (layout.model("usergpt"),)
    judged = config.eval.model_copy(
        update={"models": list(ASSISTANTS), "baseline_model": config.eval.baseline_model or ASSISTANTS[0]}
    )
    assistants = config.model_copy(update={"eval": judged})
    stages += [
        Stage(
            "eval-simulator",
            config,
            # the simulator and the base scored in the chat format, sampled as the rollout's user is
            ("model", "run.seed", "train.max_length", "train.simulator_prompt", "rollout.user.temperature")
            + ("rollout.user.top_p", "rollout.compare_with", *(f"eval.{k}" for k in SIMULATOR_EVAL)),
            (real, *rollouts, *simulator, *base),
            (layout.stats, layout.simulator),
            lambda _: steps.evaluate_simulator(config, layout),
        ),
        # measured on real sessions, as the baseline
        _train_stage(config, layout, "realm", "assistant", realchat, eval_data=real),
        Stage(
            "eval-assistants",
            assistants,
            tuple(f"eval.{k}" for k in ASSISTANTS_EVAL),
            tuple(layout.model(name) for name in ASSISTANTS),
            tuple(layout.bench(b.name) for b in config.eval.benchmarks),
            lambda _: steps.evaluate_assistants(assistants, layout),
        ),
    ]
    return stages


def _train_stage(
    config: PipelineConfig, layout: RunLayout, name: str, role: str, data: Path, eval_data: Path | None = None
) -> Stage:
    """Training ``name`` on ``data``: its own training keys (``train.models[name]`` applied to the shared ones;
    another model's do not redo it) and the base it starts from."""
    output = layout.model(name)
    eval_data = str(eval_data) if eval_data else config.train.eval_data
    train = config.train.for_model(name).model_copy(
        update={"data": str(data), "output": str(output), "eval_data": eval_data, "models": {}}
    )
    derived = config.model_copy(update={"train": train})
    inputs = (data, *([Path(eval_data)] if eval_data else []))
    if config.model.base is None and train.base_model is None:
        inputs += (layout.model("base"),)
    return Stage(
        f"train-{name}",
        derived,
        ("model", "train", "run.seed"),
        inputs,
        (output,),
        lambda fingerprint: steps.train(derived, name, role, fingerprint),
    )


def _rollout_stage(name: str, config: PipelineConfig, layout: RunLayout, output: Path) -> Stage:
    """A rollout: the models it talks to, served from the working directory unless an endpoint hosts them."""
    served = tuple(layout.model(m) for m in config.rollout.served_here())  # `base` is model.base unless the tiny one
    return Stage(name, config, ("rollout", "model"), served, (output,), lambda _: steps.rollout(config, output))
