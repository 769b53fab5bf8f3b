"""The `realm` command: a table of commands, each one parse-and-call of a stage's entry point.

Every error a user can act on is a ``RealmError``: its message is printed and its exit code returned
(2: the command could not start; 1: it started and had to stop).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from .config import PipelineConfig, load_config
from .console import captured
from .errors import RealmError
from .layout import RunLayout

_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")

#: ``run(config, args, join_ray)``: ``join_ray()`` connects to (or starts) Ray; commands call it after their own checks.
Run = Callable[[PipelineConfig, argparse.Namespace, Callable[[], None]], object]


def arg(*flags: str, **kwargs) -> tuple[tuple[str, ...], dict]:
    """One ``add_argument`` call, kept for later."""
    return flags, kwargs


@dataclass(frozen=True)
class Command:
    help: str
    run: Run | None = None
    arguments: tuple = ()
    subcommands: dict[str, Command] | None = None


def _prepare(config, args, join_ray):
    from .data import run_prepare
    from .data.inputs import resolve_inputs

    resolve_inputs(args.input or config.prepare.inputs)  # fail before starting Ray
    join_ray()
    run_prepare(config, args.input, args.output)


def _init_model(config, args, join_ray):
    from .models import run_init_model

    run_init_model(config, args.corpus, args.output)


def _train(config, args, join_ray):
    from .train import run_train

    join_ray()
    run_train(config, args.role)


def _serve(config, args, join_ray):
    from .serve import model_paths, run_serve

    model_paths(config)  # fail on a missing model before starting Ray
    join_ray()
    run_serve(config, detach=args.detach)


def _rollout(config, args, join_ray):
    from .rollout import run_rollout

    if not args.estimate:  # a projection reads the output directory only
        join_ray()
    run_rollout(config, args.output, estimate=args.estimate)


def _answers(config, args, join_ray):
    from .eval import run_answers

    join_ray()
    run_answers(config, args.bench, args.model)


def _judge(config, args, join_ray):
    from .eval import run_judge

    join_ray()
    run_judge(config, args.bench)


def _show(config, args, join_ray):
    from .eval import run_show

    cfg = config.eval
    run_show(args.input, args.questions, args.baseline or cfg.baseline_model, args.output, cfg.bootstrap_rounds)


def _stats(config, args, join_ray):
    from .eval import run_stats

    run_stats(config, args.input, args.names, args.output)


def _simulator(config, args, join_ray):
    from .eval import run_simulator

    run_simulator(config, args.output, args.simulated, args.real)


def _pipeline(config, args, join_ray):
    from .pipeline import run_pipeline

    join_ray()
    run_pipeline(config)  # main() applied --workdir to run.workdir


BENCH = arg("--bench", nargs="+", default=None, help="benchmark names from eval.benchmarks (default: all)")

EVAL_COMMANDS = {
    "answers": Command(
        "Answer FastChat question sets (MT-Bench, Vicuna-bench) through an OpenAI-compatible endpoint.",
        _answers,
        (BENCH, arg("--model", default=None, help="model that answers (default: eval.answer.model)")),
    ),
    "judge": Command(
        "Grade answers (single) or compare models (pairwise) with an LLM judge, FastChat-compatible.", _judge, (BENCH,)
    ),
    "show": Command(
        "Scores, win rates and bootstrap confidence intervals from FastChat judgment files.",
        _show,
        (
            arg("--input", nargs="+", required=True, help="model_judgment/*.jsonl files (ours or published ones)"),
            arg("--questions", default=None, help="question.jsonl, for per-category scores"),
            arg(
                "--baseline",
                default=None,
                help="pairwise: only games against this model (default: eval.baseline_model)",
            ),
            arg("--output", default=None, help="JSON file for the results"),
        ),
    ),
    "stats": Command(
        "Statistics of chat datasets side by side (real vs simulated): JSON, Markdown, plots, HTML.",
        _stats,
        (
            arg(
                "--input",
                nargs="+",
                required=True,
                metavar="DATASET",
                help="dataset files or directories (messages format or ShareGPT)",
            ),
            arg("--names", nargs="+", default=None, help="a name per dataset (default: directory names)"),
            arg("--output", default=None, help="output directory (default: <eval.output>/stats)"),
        ),
    ),
    "simulator": Command(
        "The user simulator against real people: perplexity and termination F1 on held-out conversations, its "
        "sessions next to real ones, each target met or not.",
        _simulator,
        (
            arg("--output", default=None, help="JSON file (default: <eval.output>/simulator.json)"),
            arg("--simulated", default=None, help="rollout output to compare with real sessions (default: the run's)"),
            arg("--real", default=None, help="real sessions to compare with (default: the prepared train split)"),
        ),
    ),
}

COMMANDS = {
    "prepare": Command(
        "ShareGPT files to cleaned, deduplicated, segmented conversations (Ray Data).",
        _prepare,
        (
            arg("--input", nargs="+", default=None, help="files, directories, globs or URLs (default: prepare.inputs)"),
            arg("--output", default=None, help="output directory (default: <run.workdir>/real)"),
        ),
    ),
    "init-model": Command(
        "Train a tokenizer on a corpus and write a tiny LLaMA-architecture model.",
        _init_model,
        (
            arg("--corpus", required=True, help="prepared dataset directory (output of `realm prepare`)"),
            arg("--output", required=True, help="directory for the Hugging Face model"),
        ),
    ),
    "train": Command(
        "Fine-tune UserGPT (--role user) or an assistant (--role assistant) on Ray Train + DeepSpeed.",
        _train,
        (
            arg(
                "--role",
                choices=["user", "assistant"],
                required=True,
                help="user: role-swapped view; assistant: normal",
            ),
        ),
    ),
    "serve": Command(
        "Serve models by name behind one OpenAI-compatible API on Ray Serve (Ctrl-C stops).",
        _serve,
        (arg("--detach", action="store_true", help="deploy and return; the app keeps running on the cluster"),),
    ),
    "rollout": Command(
        "Synthesise sessions between the user simulator and an assistant (Ray Data actors, resumable).",
        _rollout,
        (
            arg("--output", default=None, help="output directory (default: rollout.output or <run.workdir>/realchat)"),
            arg(
                "--estimate",
                action="store_true",
                help="print the tokens, cost and wall time of the seeds still to run, projected from the sessions "
                "made so far (a pilot), and run nothing",
            ),
        ),
    ),
    "eval": Command(
        "Benchmarks, LLM judge, results, dataset statistics, simulator fidelity.", subcommands=EVAL_COMMANDS
    ),
    "pipeline": Command(
        "Run every stage in order, skipping those already complete.",
        _pipeline,
        (arg("--workdir", default=None, help="working directory (default: run.workdir)"),),
    ),
}


def _add(parent: argparse.ArgumentParser, commands: dict[str, Command], dest: str) -> None:
    sub = parent.add_subparsers(dest=dest, required=True)
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        if command.subcommands:
            _add(p, command.subcommands, f"{name}_command")
            continue
        p.add_argument("--config", help="YAML config (default: built-in defaults)")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. prepare.min_turns=2")
        for flags, kwargs in command.arguments:
            p.add_argument(*flags, **kwargs)
        p.set_defaults(run=command.run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realm", description="ReaLM on Ray: user simulator, synthetic chats, assistants."
    )
    _add(parser, COMMANDS, "command")
    return parser


def _split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """The dotted ``key.sub=value`` overrides wherever they stand on the command line (before, between or after
    options, as users write them), and the rest for argparse."""
    return [a for a in argv if _OVERRIDE.match(a)], [a for a in argv if not _OVERRIDE.match(a)]


def main(argv: list[str] | None = None, runtime_env: dict | None = None) -> int:
    """Run one command; ``runtime_env`` (from jobs/) applies to every task and actor it starts."""
    overrides, rest = _split_overrides(sys.argv[1:] if argv is None else list(argv))
    args = _parser().parse_args(rest)
    name = " ".join(filter(None, (args.command, getattr(args, f"{args.command}_command", None))))
    log = None
    try:
        config = load_config(args.config, overrides)
        if getattr(args, "workdir", None):
            config.run.workdir = args.workdir

        def join_ray() -> None:
            from .runtime import ensure_ray

            ensure_ray(config.ray, runtime_env)

        with captured(RunLayout(config).log(name.replace(" ", "-")), config.run.console == "quiet") as log:
            args.run(config, args, join_ray)
    except (RealmError, FileNotFoundError) as exc:
        _failed(name, str(exc), log)
        return getattr(exc, "exit_code", 1)
    except Exception as exc:
        from ray.train import TrainingFailedError  # imported only here: `ray.train` is slow to import

        if not isinstance(exc, TrainingFailedError):
            raise
        _failed(name, f"training failed (resubmit the same command to resume): {exc}", log)
        return 1
    return 0


def _failed(name: str, message: str, log) -> None:
    print(f"realm {name}: {message}", file=sys.stderr)
    if log is not None:
        print(f"realm {name}: the full log is {log}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
