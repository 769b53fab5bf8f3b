"""Training start: a 2-step `realm train` run with the splits read by the driver with pyarrow into the object store
(what `run_train` does) against read by Ray Data read tasks and materialized (the read before), side by side.

    .venv/bin/python bench/train_start.py [--rounds 2]

The sample corpus through `realm prepare`, the tiny base model, then rounds that alternate the two reads (and which
one goes first) so machine noise hits both; each run is a real Ray Train run (2 workers, DeepSpeed on CPU) from
`trainer.fit()` to the exported model, where the start dominates. Writes bench/results/train_start.json and prints
one summary line last.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from side_by_side import start, tiny_base, write_medians  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.train import run as train_run  # noqa: E402

DRIVER = train_run._read


def ray_data(data: str, split: str):
    """The read before: Ray Data read tasks, materialized once into the object store."""
    files = train_run.split_files(data, split)
    return ray.data.read_parquet([str(f) for f in files]).materialize() if files else None


def main() -> None:
    args = start(__doc__, "train_start")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_base(tmp)
        for round_ in range(args.rounds):
            pair = [("ray_data", ray_data), ("driver", DRIVER)]
            for mode, read in pair if round_ % 2 == 0 else reversed(pair):  # neither always runs first
                train_run._read = read
                run = f"{tmp}/{mode}-{round_}"
                config = load_config(
                    ROOT / "configs" / "tiny.yaml",
                    [
                        f"run.workdir={run}",
                        f"train.data={tmp}/real",
                        f"train.base_model={model}",
                        f"train.storage_path={run}/storage",
                        "train.max_steps=2",
                        "train.eval_steps=2",
                        "train.save_steps=2",
                    ],
                )
                started = time.perf_counter()
                metrics = train_run.run_train(config, "user")
                runs.append({"mode": mode, "round": round_, "seconds": round(time.perf_counter() - started, 2)})
                assert metrics["step"] == 2, metrics
    train_run._read = DRIVER
    result = write_medians(runs, "mode", "ray_data", "driver", args.output)
    median = result["median_seconds"]
    print(
        f"train start (2 steps, 2 workers): Ray Data read {median['ray_data']:.1f}s, driver read "
        f"{median['driver']:.1f}s, x{result['speedup']:.2f}"
    )


if __name__ == "__main__":
    main()
