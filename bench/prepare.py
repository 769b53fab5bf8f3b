"""Prepare throughput: conversations per second with 1 and 2 Ray Data workers, side by side.

    .venv/bin/python bench/prepare.py --conversations 100000

Generates a messy ShareGPT corpus (sharded over several JSONL files), runs `realm prepare`
on it once per worker count in one Ray session, writes bench/results/prepare.json and prints
one summary line last.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "data" / "sample")]

import ray  # noqa: E402
from make_sample import generate  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.data import run_prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "prepare.json"))
    args = parser.parse_args()

    ray.init(num_cpus=max(args.workers), include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    results = {"conversations": args.conversations, "files": args.files, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        lines = generate(args.conversations, seed=11)
        corpus = Path(tmp, "corpus")
        corpus.mkdir()
        for i in range(args.files):
            (corpus / f"part-{i:02d}.jsonl").write_text("\n".join(lines[i :: args.files]) + "\n")
        for workers in args.workers:
            cfg = load_config(
                ROOT / "configs" / "tiny.yaml", [f"prepare.num_workers={workers}", "prepare.batch_size=1024"]
            )
            started = time.perf_counter()
            summary = run_prepare(cfg, [str(corpus)], str(Path(tmp, f"out-{workers}")))
            seconds = time.perf_counter() - started
            results["runs"].append(
                {
                    "workers": workers,
                    "seconds": round(seconds, 2),
                    "input_records": summary["input_records"],
                    "conversations_kept": summary["conversations_kept"],
                    "conversations_per_second": round(summary["input_records"] / seconds, 1),
                }
            )
    base = results["runs"][0]["conversations_per_second"]
    for run in results["runs"]:
        run["speedup_vs_first"] = round(run["conversations_per_second"] / base, 3)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(
        "prepare: "
        + ", ".join(f"{r['workers']} worker(s) {r['conversations_per_second']:.0f} conv/s" for r in results["runs"])
        + f", speedup x{results['runs'][-1]['speedup_vs_first']:.2f}"
        + f" on {args.conversations} conversations -> {args.output}"
    )


if __name__ == "__main__":
    main()
