"""The `realm` command. It only parses arguments and calls each stage's entry point."""

from __future__ import annotations

import argparse
import re
import sys

from .config import ConfigError, load_config

_OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="realm", description="ReaLM on Ray: user simulator, synthetic chats, assistants.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.add_argument("--config", help="YAML config (default: built-in defaults)")
        p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. prepare.min_turns=2")
        return p

    p = command("prepare", "ShareGPT files to cleaned, deduplicated, segmented conversations (Ray Data).")
    p.add_argument("--input", nargs="+", default=None, help="files, directories, globs or fsspec URLs (default: prepare.inputs)")
    p.add_argument("--output", default=None, help="output directory (default: <run.workdir>/real)")

    p = command("init-model", "Train a tokenizer on a corpus and write a tiny LLaMA-architecture model.")
    p.add_argument("--preset", default=None, help="model preset (default: model.init.preset)")
    p.add_argument("--corpus", required=True, help="prepared dataset directory (output of `realm prepare`)")
    p.add_argument("--output", required=True, help="directory for the Hugging Face model")

    p = command("train", "Fine-tune UserGPT (--role user) or an assistant (--role assistant) on Ray Train + DeepSpeed.")
    p.add_argument("--role", choices=["user", "assistant"], required=True, help="user: role-swapped view (UserGPT); assistant: normal view")

    p = command("serve", "Serve models by name behind one OpenAI-compatible API on Ray Serve (Ctrl-C stops).")
    p.add_argument("--detach", action="store_true", help="deploy and return; the app keeps running on a long-lived cluster")

    p = command("rollout", "Synthesise sessions between the user simulator and an assistant (Ray Data actors, resumable).")
    p.add_argument("--output", default=None, help="output directory (default: rollout.output or <run.workdir>/realchat)")

    evaluation = sub.add_parser("eval", help="Benchmarks, LLM judge, results, dataset statistics, simulator fidelity.")
    ev = evaluation.add_subparsers(dest="eval_command", required=True)
    p = command("answers", "Answer FastChat question sets (MT-Bench, Vicuna-bench) through an OpenAI-compatible endpoint.", ev)
    p.add_argument("--bench", nargs="+", default=None, help="benchmark names from eval.benchmarks (default: all)")
    p.add_argument("--model", default=None, help="model that answers (default: eval.answer.model)")
    p = command("judge", "Grade answers (single) or compare models (pairwise) with an LLM judge, FastChat-compatible.", ev)
    p.add_argument("--bench", nargs="+", default=None, help="benchmark names from eval.benchmarks (default: all)")
    p = command("show", "Scores, win rates and bootstrap confidence intervals from FastChat judgment files.", ev)
    p.add_argument("--input", nargs="+", required=True, help="model_judgment/*.jsonl files (ours or published ones)")
    p.add_argument("--questions", default=None, help="question.jsonl, for per-category scores")
    p.add_argument("--baseline", default=None, help="pairwise: count only games against this model (default: eval.baseline_model)")
    p.add_argument("--output", default=None, help="JSON file for the results")
    p = command("stats", "Statistics of chat datasets side by side (real vs simulated): JSON, Markdown, plots, HTML.", ev)
    p.add_argument("--input", nargs="+", required=True, metavar="DATASET", help="dataset files or directories (messages or ShareGPT)")
    p.add_argument("--names", nargs="+", default=None, help="a name per dataset (default: directory names)")
    p.add_argument("--output", default=None, help="output directory (default: <eval.output>/stats)")
    p = command("simulator", "The user simulator's perplexity on real human turns, next to the untrained base model's.", ev)
    p.add_argument("--output", default=None, help="JSON file (default: <eval.output>/simulator.json)")

    p = command("pipeline", "Run every stage in order, skipping those already complete.")
    p.add_argument("--workdir", default=None, help="working directory (default: run.workdir)")
    return parser


def _split_overrides(args: argparse.Namespace) -> list[str]:
    """``--input a b key.x=1`` puts the override into --input; move such items back."""
    overrides = list(args.overrides)
    if getattr(args, "input", None):
        overrides += [item for item in args.input if _OVERRIDE.match(item)]
        args.input = [item for item in args.input if not _OVERRIDE.match(item)] or None
    return overrides


def main(argv: list[str] | None = None, runtime_env: dict | None = None) -> int:
    """Run one command; ``runtime_env`` (from jobs/) applies to every task and actor it starts."""
    args = _parser().parse_args(argv)
    overrides = _split_overrides(args)
    if getattr(args, "preset", None):
        overrides.append(f"model.init.preset={args.preset}")
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"realm {args.command}: {exc}", file=sys.stderr)
        return 2

    from ray.train import TrainingFailedError

    from .data.inputs import InputError
    from .data.prepare import PrepareError
    from .eval import EvalError, FormatError
    from .models.loading import ModelNotFoundError
    from .rollout import RolloutError
    from .train.run import TrainError

    try:
        if args.command == "prepare":
            from .data import run_prepare
            from .data.inputs import resolve_inputs
            from .runtime import ensure_ray

            resolve_inputs(args.input or config.prepare.inputs)  # fail before starting Ray
            ensure_ray(config.ray, runtime_env)
            run_prepare(config, args.input, args.output)
        elif args.command == "init-model":
            from .models import run_init_model

            run_init_model(config, args.corpus, args.output)
        elif args.command == "train":
            from .runtime import ensure_ray
            from .train import run_train

            ensure_ray(config.ray, runtime_env)
            run_train(config, args.role)
        elif args.command == "serve":
            from .runtime import ensure_ray
            from .serve import model_paths, run_serve

            model_paths(config)  # fail on a missing model before starting Ray
            ensure_ray(config.ray, runtime_env)
            run_serve(config, detach=args.detach)
        elif args.command == "rollout":
            from .rollout import run_rollout
            from .runtime import ensure_ray

            ensure_ray(config.ray, runtime_env)
            run_rollout(config, args.output)
        elif args.command == "eval":
            return _eval(config, args, runtime_env)
        elif args.command == "pipeline":
            from .pipeline import run_pipeline
            from .runtime import ensure_ray

            ensure_ray(config.ray, runtime_env)
            run_pipeline(config, args.workdir)
    except (ConfigError, InputError, ModelNotFoundError, TrainError) as exc:
        print(f"realm {args.command}: {exc}", file=sys.stderr)
        return 2
    except (RolloutError, EvalError, FormatError, FileNotFoundError) as exc:
        print(f"realm {args.command}: {exc}", file=sys.stderr)
        return 1
    except PrepareError as exc:
        print(f"realm {args.command}: {exc}", file=sys.stderr)
        return 1
    except TrainingFailedError as exc:
        print(f"realm {args.command}: training failed (resubmit the same command to resume): {exc}", file=sys.stderr)
        return 1
    return 0


def _eval(config, args: argparse.Namespace, runtime_env: dict | None) -> int:
    from . import eval as evaluation
    from .runtime import ensure_ray

    command = args.eval_command
    if command == "show":
        evaluation.run_show(args.input, args.questions, args.baseline or config.eval.baseline_model, args.output, config.eval.bootstrap_rounds)
    elif command == "stats":
        evaluation.run_stats(config, args.input, args.names, args.output)
    elif command == "simulator":
        evaluation.run_simulator(config, args.output)
    else:
        ensure_ray(config.ray, runtime_env)
        if command == "answers":
            evaluation.run_answers(config, args.bench, args.model)
        else:
            evaluation.run_judge(config, args.bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
