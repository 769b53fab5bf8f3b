"""Full fine-tuning against LoRA for the real-model preset's UserGPT: held-out loss per minute, side by side.

    .venv/bin/python bench/full_vs_lora.py [--steps 15] [--eval-steps 5] [--workdir runs/smollm2-bench]

configs/smollm2.yaml's training (SmolLM2-135M-Instruct, 2 workers, its data prepared in the working directory
first), the user view, once with every weight trained and once with LoRA adapters (rank 16 on the attention
projections, the end marker's row trained); only those keys and the learning rate differ. Every eval loss is
recorded with the seconds since training began; the two are compared at the same seconds (the later of the
runs' last evals, each curve held at its last value). Writes bench/results/full_vs_lora.json and prints one
summary line last.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_apps.config import load_config  # noqa: E402
from ray_apps.data import run_prepare  # noqa: E402
from ray_apps.layout import RunLayout  # noqa: E402
from ray_apps.runtime import ensure_ray  # noqa: E402
from ray_apps.train import run_train  # noqa: E402

MODES = {
    "full": ["train.lora.enabled=false"],
    "lora": ["train.lora.enabled=true"],
}


def loss_at(history: list[dict], seconds: float) -> float:
    """The eval loss reached by ``seconds`` (the last one measured by then)."""
    reached = [h["eval_loss"] for h in history if (h["seconds"] or 0) <= seconds]
    return reached[-1] if reached else history[0]["eval_loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--eval-steps", type=int, default=5)
    parser.add_argument("--lr-full", type=float, default=1e-4)
    parser.add_argument("--lr-lora", type=float, default=1e-3)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "smollm2-bench"))
    args = parser.parse_args()

    common = [
        f"run.workdir={args.workdir}",
        f"train.max_steps={args.steps}",
        f"train.eval_steps={args.eval_steps}",
        f"train.save_steps={args.steps}",
    ]
    config = load_config(ROOT / "configs" / "smollm2.yaml", common)
    layout = RunLayout(config)
    ensure_ray(config.ray)
    if not (layout.real.root / "summary.json").is_file():
        run_prepare(config, output=str(layout.real.root))
    runs = {}
    for mode, keys in MODES.items():
        lr = args.lr_lora if mode == "lora" else args.lr_full
        out = layout.root / "bench" / f"{mode}-{int(time.time())}"
        overrides = [
            *common,
            *keys,
            f"train.learning_rate={lr}",
            f"train.output={out / 'model'}",
            f"train.storage_path={out / 'storage'}",
        ]
        started = time.time()
        metrics = run_train(load_config(ROOT / "configs" / "smollm2.yaml", overrides), "user")
        runs[mode] = {
            "learning_rate": lr,
            "wall_seconds": round(time.time() - started, 1),
            "steps": metrics["step"],
            "eval_history": metrics["eval_history"],
        }
    horizon = max(run["eval_history"][-1]["seconds"] for run in runs.values())
    for run in runs.values():
        run["eval_loss_at_horizon"] = loss_at(run["eval_history"], horizon)
        first, last = run["eval_history"][0], run["eval_history"][-1]
        run["loss_drop_per_minute"] = round((first["eval_loss"] - last["eval_loss"]) / (last["seconds"] / 60), 4)
    better = min(runs, key=lambda mode: runs[mode]["eval_loss_at_horizon"])
    result = {"steps": args.steps, "horizon_seconds": horizon, "runs": runs, "lower_loss_per_minute": better}
    out = ROOT / "bench" / "results" / "full_vs_lora.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"full_vs_lora: at {horizon:.0f}s of training, eval loss full {runs['full']['eval_loss_at_horizon']:.4f} "
        f"({runs['full']['steps']} steps in {runs['full']['eval_history'][-1]['seconds']:.0f}s) vs lora "
        f"{runs['lora']['eval_loss_at_horizon']:.4f} ({runs['lora']['steps']} steps in "
        f"{runs['lora']['eval_history'][-1]['seconds']:.0f}s): {better} reaches the lower held-out loss per minute",
        flush=True,
    )


if __name__ == "__main__":
    main()
