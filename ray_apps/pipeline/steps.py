"""What each pipeline stage runs, given the config it runs with (``graph.py`` declares what each reads and
writes)."""

from __future__ import annotations

from pathlib import Path

from ..config import PipelineConfig
from ..eval.fastchat import judgments_dir, results_file
from ..layout import RunLayout
from .serving import serving


def prepare(config: PipelineConfig, output: Path) -> dict:
    from ..data import run_prepare

    return run_prepare(config, output=str(output))


def init_model(config: PipelineConfig) -> dict:
    from ..models import run_init_model

    layout = RunLayout(config)
    return {"model": str(run_init_model(config, layout.real.root, layout.model("base")))}


def train(config: PipelineConfig, name: str, role: str, fingerprint: str) -> dict:
    """Train ``name``; its Ray Train run is named after the stage's fingerprint: a rerun resumes it, changed
    inputs start a new one."""
    from ..train import run_train

    metrics = run_train(config, role, run_name=f"{config.run.name}-{name}-{fingerprint[:8]}")
    kept = ("output", "step", "eval_loss_first", "eval_loss_last", "tokens_per_second", "packing_efficiency")
    return {k: metrics.get(k) for k in kept}


def rollout(config: PipelineConfig, output: Path) -> dict:
    """A rollout to ``output``, serving the models no configured endpoint hosts."""
    from ..rollout import run_rollout

    cfg = config.rollout
    hosted = [endpoint.model for endpoint in (cfg.user, cfg.assistant) if endpoint.base_url is not None]
    if hosted:
        print(f"[pipeline] rollout: {', '.join(hosted)} from the configured endpoint(s), not served here", flush=True)
    with serving(config, cfg.served_here()):
        return run_rollout(config, str(output))


def evaluate_simulator(config: PipelineConfig, layout: RunLayout) -> dict:
    """Real vs simulated sessions and the simulator's fidelity figures."""
    from .. import eval as evaluation

    datasets = {"real": layout.real.split("train"), "simulated": layout.realchat.data}
    if config.rollout.compare_with:
        datasets["prompted"] = layout.prompted.data
    return {
        "stats": evaluation.run_stats(config, [str(d) for d in datasets.values()], list(datasets), str(layout.stats)),
        "simulator": evaluation.run_simulator(config, str(layout.simulator)),
    }


def evaluate_assistants(config: PipelineConfig, layout: RunLayout) -> dict:
    """The assistants' (``eval.models``) benchmark answers, and their judgments when a judge is configured."""
    from .. import eval as evaluation

    result = {}
    if not config.eval.benchmarks:
        print(
            "[pipeline] eval answers: skipped, no benchmark configured "
            "(set eval.benchmarks to FastChat question files)",
            flush=True,
        )
        return result
    assistants = config.eval.models
    with serving(config, assistants if config.eval.answer.base_url is None else []):
        result["answers"] = {model: evaluation.run_answers(config, model=model) for model in assistants}
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
    from .. import eval as evaluation

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
