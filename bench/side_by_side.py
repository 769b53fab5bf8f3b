"""What the start benchmarks share: their options, a local Ray, the tiny base model, the medians written as JSON."""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(doc: str, name: str) -> argparse.Namespace:
    """The options (``--rounds``, ``--output``: bench/results/<name>.json), then a local Ray of 2 CPUs."""
    import ray

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / f"{name}.json"))
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    return args


def tiny_base(tmp: str) -> str:
    """The sample corpus through `realm prepare` (``<tmp>/real``) and the tiny base model on it; its path."""
    from ray_apps.config import load_config
    from ray_apps.data import run_prepare
    from ray_apps.models import run_init_model

    cfg = load_config(ROOT / "configs" / "tiny.yaml", [f"run.workdir={tmp}"])
    run_prepare(cfg, None, f"{tmp}/real")
    return str(run_init_model(cfg, f"{tmp}/real", f"{tmp}/base"))


def write_medians(runs: list[dict], key: str, before: str, after: str, output: str) -> dict:
    """The median ``seconds`` of the runs of each variant (``run[key]``) and the speedup of ``after`` over ``before``,
    written to ``output`` with the runs."""
    median = {v: statistics.median(r["seconds"] for r in runs if r[key] == v) for v in (before, after)}
    result = {"runs": runs, "median_seconds": median, "speedup": round(median[before] / median[after], 3)}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")
    return result
