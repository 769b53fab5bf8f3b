"""`realm pipeline`: every stage in order under one working directory, each skipped once complete.

prepare -> init-model (tiny model) -> train usergpt -> train baseline -> rollout (the simulator
and the assistant served by Ray Serve, unless hosted) -> rollout-prompted (with rollout.compare_with:
an instruct model prompted to play the user, against the same assistant) -> eval simulator (real vs
simulated, the simulators' fidelity) -> train realm -> eval assistants (benchmark answers, the judge)
-> report.

A stage's fingerprint hashes the config sections it reads (a train stage: its own model's training
keys, ``train.models`` applied) and the fingerprints of the stages it reads from. Its state lives
in ``<workdir>/stages/<stage>.json``: ``running`` while it runs, ``complete`` with its seconds and
result after. A rerun skips a complete stage with the same
fingerprint, resumes a running one (training from its last checkpoint, rollout and eval from
what they wrote) and redoes one whose fingerprint changed, clearing its old artefacts first.
``manifest.json`` lists the config fingerprint, package versions, timings and artefact paths.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .config import PipelineConfig, ServedModelConfig, write_run_config
from .console import stage_log
from .eval.fastchat import judgments_dir, results_file
from .layout import RunLayout
from .models.base import base_identity
from .runtime import ensure_ray

PACKAGES = ("realm-on-ray", "ray", "torch", "transformers", "trl", "deepspeed", "datasets", "openai", "vllm")
ASSISTANTS = ("baseline", "realm")  # the assistant trained on real sessions, and the one trained on simulated ones
# The eval keys the simulator's figures read (and eval.output): a change to the answers or the judge leaves them be.
SIMULATOR_EVAL_KEYS = {
    "stats_tokenizer",
    "embedding_model",
    "stats_sample",
    "simulator_model",
    "simulator_base",
    "heldout",
    "human_detector",
    "human_label",
}


@dataclass
class Stage:
    name: str
    sections: tuple[str, ...]  # config sections it reads
    after: tuple[str, ...]  # stages whose artefacts it reads
    artefacts: tuple[Path, ...]  # what it writes (cleared when its fingerprint changes)
    run: Callable[[str], dict]  # called with the stage's fingerprint
    settings: dict = field(default_factory=dict)  # what else it reads (hashed with the sections)


def run_pipeline(config: PipelineConfig) -> Path:
    """Run (or resume) every stage under ``run.workdir``; returns the report's path."""
    layout = RunLayout(config)
    write_run_config(config, layout.root)
    ensure_ray(config.ray)
    stages = _stages(config, layout)
    manifest = {
        "config_fingerprint": config.fingerprint(),
        "config": str(layout.resolved_config),
        "packages": _versions(),
        "stages": {},
    }
    started = time.time()
    fingerprints: dict[str, str] = {}
    for number, stage in enumerate(stages, 1):
        fingerprints[stage.name] = _fingerprint(config, stage, fingerprints)
        manifest["stages"][stage.name] = _run_stage(
            stage, fingerprints[stage.name], layout, f"{number}/{len(stages) + 1}"
        )
        _write_manifest(layout, manifest)

    from .report import write_pipeline_report

    results = {name: entry["result"] for name, entry in manifest["stages"].items()}
    report = write_pipeline_report(layout, results, manifest)
    manifest |= {"report": str(report), "seconds": round(time.time() - started, 1)}
    _write_manifest(layout, manifest)
    print(f"[pipeline] {len(stages) + 1}/{len(stages) + 1} report -> {report}", flush=True)
    print(f"[pipeline] complete in {manifest['seconds']}s; report: {report}", flush=True)
    return report


def _stages(config: PipelineConfig, layout: RunLayout) -> list[Stage]:
    from .data import run_prepare
    from .data.prepare import segment_tokenizer
    from .models import run_init_model

    real, base, realchat = layout.real.root, layout.model("base"), layout.realchat.root
    stages = [
        Stage(
            "prepare",
            ("prepare",),
            (),
            (real,),
            lambda _: run_prepare(config, output=str(real)),
            # the split's seed; the simulator's prompt takes room in every segment's user view; the tokens counted
            {
                "seed": config.run.seed,
                "simulator_prompt": config.train.simulator_prompt,
                "tokenizer": base_identity(config, tokenizer) if (tokenizer := segment_tokenizer(config)) else None,
            },
        )
    ]
    if config.model.base is None:
        stages.append(
            Stage(
                "init-model",
                ("model",),
                ("prepare",),
                (base,),
                lambda _: {"model": str(run_init_model(config, real, base))},
            )
        )
    model_stage = ("init-model",) if config.model.base is None else ("prepare",)
    stages += [
        _train_stage(config, layout, "usergpt", "user", real, model_stage),
        _train_stage(config, layout, "baseline", "assistant", real, model_stage),
        Stage(
            "rollout",
            (),
            ("train-usergpt", "train-baseline"),
            (realchat,),
            lambda _: _rollout(config, realchat),
            {"rollout": config.rollout.model_dump(mode="json", exclude={"compare_with"})},
        ),
    ]
    if config.rollout.compare_with:
        stages.append(_prompted_rollout_stage(config, layout, model_stage))
    stages += [
        Stage(
            "eval-simulator",
            ("model",),  # the base scored next to the simulator, in the chat format
            ("rollout", "rollout-prompted") if config.rollout.compare_with else ("rollout",),
            (layout.stats, layout.simulator),
            lambda _: _evaluate_simulator(config, layout),
            {
                "eval": config.eval.model_dump(mode="json", include=SIMULATOR_EVAL_KEYS | {"output"}),
                "base": base_identity(config),
            },
        ),
        # measured on real sessions, as the baseline
        _train_stage(config, layout, "realm", "assistant", realchat, ("rollout",), eval_data=real),
        Stage(
            "eval-assistants",
            (),
            ("train-baseline", "train-realm"),
            tuple(layout.bench(b.name) for b in config.eval.benchmarks),
            lambda _: _evaluate_assistants(config, layout),
            {"eval": config.eval.model_dump(mode="json", exclude=SIMULATOR_EVAL_KEYS)},
        ),
    ]
    return stages


def _prompted_rollout_stage(config: PipelineConfig, layout: RunLayout, model_stage: tuple[str, ...]) -> Stage:
    """The prompted simulator's rollout (``rollout.compare_with``): the same assistant, sessions and seeds."""
    prompted = config.model_copy(update={"rollout": config.rollout.prompted()})
    cfg = prompted.rollout
    trained = {"usergpt": "train-usergpt", "baseline": "train-baseline"}  # the models it may talk to made here
    after = model_stage + tuple(
        trained[m] for m in dict.fromkeys((cfg.user.model, cfg.assistant.model)) if m in trained
    )
    output = layout.prompted.root
    return Stage(
        "rollout-prompted",
        (),
        after,
        (output,),
        lambda _: _rollout(prompted, output),
        {"rollout": cfg.model_dump(mode="json"), "base": base_identity(config)},
    )


def _train_stage(
    config: PipelineConfig,
    layout: RunLayout,
    name: str,
    role: str,
    data: Path,
    after: tuple[str, ...],
    eval_data: Path | None = None,
) -> Stage:
    from .train import run_train

    output = layout.model(name)
    eval_data = str(eval_data) if eval_data else config.train.eval_data
    train = config.train.model_copy(update={"data": str(data), "output": str(output), "eval_data": eval_data})
    derived = config.model_copy(update={"train": train})

    def run(fingerprint: str) -> dict:
        # The Ray Train run is named after the stage's fingerprint: a rerun resumes it, changed inputs start a new one.
        metrics = run_train(derived, role, run_name=f"{config.run.name}-{name}-{fingerprint[:8]}")
        kept = ("output", "step", "eval_loss_first", "eval_loss_last", "tokens_per_second", "packing_efficiency")
        return {k: metrics.get(k) for k in kept}

    # its own training keys (the shared ones with train.models[name] applied): another model's do not redo it; the
    # base model it starts from (a GGUF file by its bytes) and its chat format
    settings = {
        "train": config.train.for_model(name).model_dump(mode="json", exclude={"models"}),
        "base": base_identity(config, config.train.base_model),
        "seed": config.run.seed,
    }
    return Stage(f"train-{name}", ("model",), after, (output,), run, settings)


def _rollout(config: PipelineConfig, output: Path) -> dict:
    from .rollout import run_rollout

    cfg = config.rollout
    hosted = [endpoint.model for endpoint in (cfg.user, cfg.assistant) if endpoint.base_url is not None]
    if hosted:
        print(f"[pipeline] rollout: {', '.join(hosted)} from the configured endpoint(s), not served here", flush=True)
    local = [endpoint.model for endpoint in (cfg.user, cfg.assistant) if endpoint.base_url is None]
    with _serving(config, local):
        return run_rollout(config, str(output))


def _evaluate_simulator(config: PipelineConfig, layout: RunLayout) -> dict:
    """Real vs simulated sessions and the simulator's fidelity figures."""
    from . import eval as evaluation

    datasets = {"real": layout.real.split("train"), "simulated": layout.realchat.data}
    if config.rollout.compare_with:
        datasets["prompted"] = layout.prompted.data
    return {
        "stats": evaluation.run_stats(config, [str(d) for d in datasets.values()], list(datasets), str(layout.stats)),
        "simulator": evaluation.run_simulator(config, str(layout.simulator)),
    }


def _evaluate_assistants(config: PipelineConfig, layout: RunLayout) -> dict:
    """The assistants' benchmark answers, and their judgments when a judge is configured."""
    from . import eval as evaluation

    result = {}
    if not config.eval.benchmarks:
        print(
            "[pipeline] eval answers: skipped, no benchmark configured "
            "(set eval.benchmarks to FastChat question files)",
            flush=True,
        )
        return result
    judged = config.eval.model_copy(
        update={"models": list(ASSISTANTS), "baseline_model": config.eval.baseline_model or ASSISTANTS[0]}
    )
    config = config.model_copy(update={"eval": judged})
    with _serving(config, list(ASSISTANTS) if config.eval.answer.base_url is None else []):
        result["answers"] = {model: evaluation.run_answers(config, model=model) for model in ASSISTANTS}
        if config.eval.judge is None:
            print(
                "[pipeline] eval judge: skipped, no judge endpoint configured. To judge, set eval.judge "
                "({model, base_url, api_key_env}) and eval.judge_prompts (FastChat judge_prompts.jsonl), then rerun.",
                flush=True,
            )
            result["judge"] = None
        else:
            evaluation.run_judge(config)
            result["judge"] = _show(config, layout)
    return result


def _show(config: PipelineConfig, layout: RunLayout) -> dict:
    from . import eval as evaluation

    shown = {}
    for bench in config.eval.benchmarks:
        root = layout.bench(bench.name)
        files = sorted(str(f) for f in judgments_dir(root).glob("*.jsonl"))
        if files:
            shown[bench.name] = evaluation.run_show(
                files,
                bench.questions,
                config.eval.baseline_model,
                str(results_file(root)),
                config.eval.bootstrap_rounds,
            )
    return shown


@contextmanager
def _serving(config: PipelineConfig, names: list[str]) -> Iterator[None]:
    """Serve ``names`` from ``<workdir>/models`` while the block runs (replica settings from ``serve.models``
    when listed there)."""
    if not names:
        yield
        return
    from .serve import start_serve, stop_serve

    listed = {m.name: m for m in config.serve.models}
    template = config.serve.models[0] if config.serve.models else ServedModelConfig(name=names[0])
    models = [
        listed.get(name) or template.model_copy(update={"name": name, "path": None}) for name in dict.fromkeys(names)
    ]
    served = config.model_copy(update={"serve": config.serve.model_copy(update={"models": models})})
    url = start_serve(served)
    print(f"[pipeline] serving {', '.join(m.name for m in models)} at {url} (engine {config.serve.engine})", flush=True)
    try:
        yield
    finally:
        stop_serve(served, tag="pipeline")  # frees the replicas' CPUs and GPUs for the next stage


def _fingerprint(config: PipelineConfig, stage: Stage, upstream: dict[str, str]) -> str:
    dumped = config.model_dump(mode="json")
    inputs = {
        "sections": {s: dumped[s] for s in stage.sections} | stage.settings,
        "after": {s: upstream[s] for s in stage.after},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _state(layout: RunLayout, name: str) -> dict:
    path = layout.stage(name)
    return json.loads(path.read_text()) if path.is_file() else {}


def _set_state(layout: RunLayout, name: str, state: dict) -> None:
    path = layout.stage(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2, default=str) + "\n")
    path.with_suffix(".tmp").replace(path)


def _run_stage(stage: Stage, fingerprint: str, layout: RunLayout, position: str) -> dict:
    state = _state(layout, stage.name)
    artefacts = [str(p) for p in stage.artefacts]
    if state.get("status") == "complete" and state.get("fingerprint") == fingerprint:
        print(f"[pipeline] {position} {stage.name}: done before, skipped ({', '.join(artefacts)})", flush=True)
        return state | {"skipped": True}
    if state and state.get("fingerprint") != fingerprint:
        # Only what the pipeline owns is deleted: a configured directory elsewhere (eval.output, rollout.output)
        # is kept.
        owned = [p for p in stage.artefacts if p.resolve().is_relative_to(layout.root)]
        kept = ", ".join(str(p) for p in stage.artefacts if p not in owned)
        cleared = ", ".join(str(p) for p in owned) or "nothing"
        print(
            f"[pipeline] {position} {stage.name}: its config or inputs changed, clearing {cleared}"
            + (f" (kept, outside the working directory: {kept})" if kept else ""),
            flush=True,
        )
        for path in owned:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    resumed = state.get("status") == "running" and state.get("fingerprint") == fingerprint
    print(
        f"[pipeline] {position} {stage.name}: {'resuming' if resumed else 'running'} -> {', '.join(artefacts)}",
        flush=True,
    )
    _set_state(
        layout,
        stage.name,
        {"stage": stage.name, "status": "running", "fingerprint": fingerprint, "artefacts": artefacts},
    )
    started = time.time()
    with stage_log(layout.log(stage.name)) as log:
        try:
            result = stage.run(fingerprint)
        except BaseException as exc:
            stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))  # Ctrl-C, `ray job stop`
            print(
                f"[pipeline] {position} {stage.name}: {'stopped' if stopped else 'failed'} after"
                f" {time.time() - started:.0f}s"
                + (f"; its log: {log}" if log else "")
                + ("; what it wrote is kept, resume" if stopped else "; fix the cause and resume")
                + f" with the same command: {_command()}",
                file=sys.stderr,
                flush=True,
            )
            raise
    state = {
        "stage": stage.name,
        "status": "complete",
        "fingerprint": fingerprint,
        "seconds": round(time.time() - started, 1),
        "artefacts": artefacts,
        "result": result,
    }
    _set_state(layout, stage.name, state)
    print(f"[pipeline] {position} {stage.name}: finished in {state['seconds']}s", flush=True)
    return state


def _command() -> str:
    """The command line that started this process (what resumes it)."""
    program = Path(sys.argv[0]).name
    return shlex.join([program, *sys.argv[1:]] if program == "realm" else [Path(sys.executable).name, *sys.argv])


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _write_manifest(layout: RunLayout, manifest: dict) -> None:
    layout.manifest.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
