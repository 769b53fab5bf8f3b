"""vLLM app start on CPU: two tiny models through ray.serve.llm with Ray's per-node model download task skipped for
local models (`ray_apps.serve.vllm_node`, what `serve.engine=vllm` does) against with it (Ray's default), side by
side.

    .venv/bin/python bench/vllm_start.py [--rounds 2]

The sample corpus through `realm prepare` and the tiny base model, served as `usergpt` and `baseline` with
`enforce_eager` (torch.compile's start would add the same to both); each round starts the app with one variant and
then the other (which goes first alternates), from `start_serve` to the first chat completion, then shuts Serve
down. Writes bench/results/vllm_start.json and prints one summary line last.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from ray import serve  # noqa: E402
from side_by_side import start, tiny_base, write_medians  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.serve import start_serve  # noqa: E402
from ray_apps.serve import vllm as vllm_engine  # noqa: E402

LLM_CONFIG = vllm_engine.llm_config


def with_download_task(*args):
    """The LLMConfig before: no callback, so Ray runs its download task on each node of the replica."""
    kwargs = LLM_CONFIG(*args)
    kwargs.pop("callback_config")
    return kwargs


def main() -> None:
    args = start(__doc__, "vllm_start")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_base(tmp)
        models = ", ".join(f"{{name: {name}, path: '{model}', num_cpus: 0.25}}" for name in ("usergpt", "baseline"))
        overrides = ["serve.engine=vllm", "serve.engine_kwargs={enforce_eager: true}", f"serve.models=[{models}]"]
        config = load_config(ROOT / "configs" / "tiny.yaml", [f"run.workdir={tmp}", *overrides])
        for round_ in range(args.rounds):
            pair = [("download_task", with_download_task), ("skipped", LLM_CONFIG)]
            for variant, llm_config in pair if round_ % 2 == 0 else reversed(pair):  # neither always runs first
                vllm_engine.llm_config = llm_config
                started = time.perf_counter()
                client = openai.OpenAI(base_url=start_serve(config), api_key="unused", max_retries=0)
                answer = client.chat.completions.create(
                    model="baseline", messages=[{"role": "user", "content": "hi"}], max_tokens=4
                )
                seconds = round(time.perf_counter() - started, 2)
                assert answer.usage.completion_tokens >= 1, answer
                runs.append({"variant": variant, "round": round_, "seconds": seconds})
                serve.shutdown()
    vllm_engine.llm_config = LLM_CONFIG
    result = write_medians(runs, "variant", "download_task", "skipped", args.output)
    median = result["median_seconds"]
    print(
        f"vLLM app start (2 tiny models, CPU, eager): with Ray's download task {median['download_task']:.1f}s, "
        f"skipped for local models {median['skipped']:.1f}s, x{result['speedup']:.2f}"
    )


if __name__ == "__main__":
    main()
