"""Serving throughput: the `hf` engine on Ray Serve at 1, 8, 32 and 64 concurrent clients, against a
plain sequential batch-1 `model.generate` loop on the same model and machine, in one run.

    .venv/bin/python bench/serve_throughput.py [--model PATH_OR_HUB_ID] [--max-tokens 256]

Without --model it builds the tiny default model (prepare + init-model on the sample corpus).
Prompts are first user turns of the sample corpus through the model's chat template; both sides
sample at temperature 1 with the same token budget, and count only tokens really generated.
Clients are closed loops (each sends its next request when the last one is answered) through
the official `openai` AsyncOpenAI client over HTTP. Writes bench/results/serve_throughput.json
and prints one summary line last. Target: >= 8x the sequential loop at 64 clients on CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from ray import serve  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.conversation import parse_sharegpt  # noqa: E402
from ray_apps.models import load_model, load_tokenizer  # noqa: E402
from ray_apps.pipeline import run_pipeline  # noqa: E402
from ray_apps.serve import start_serve  # noqa: E402


def first_questions(n: int) -> list[str]:
    out = []
    for line in (ROOT / "data/sample/sharegpt_sample.jsonl").read_text(errors="replace").splitlines():
        try:
            messages = parse_sharegpt(line)["messages"]
        except ValueError:
            continue
        question = next((m["content"] for m in messages if m["role"] == "user"), "")
        if question:
            out.append(question[:400])
        if len(out) == n:
            break
    return out


def sequential(model_dir: str, questions: list[str], max_tokens: int) -> dict:
    """The reference: one conversation at a time, batch 1, `model.generate`."""
    model, tokenizer = load_model(model_dir).eval(), load_tokenizer(model_dir)
    tokens, started = 0, time.perf_counter()
    for q in questions:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=True, temperature=1.0, top_p=1.0)
        tokens += out.shape[1] - inputs["input_ids"].shape[1]
    seconds = time.perf_counter() - started
    return {
        "requests": len(questions),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


async def clients(
    url: str, model: str, questions: list[str], concurrency: int, per_client: int, max_tokens: int
) -> dict:
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)

    async def one(c: int) -> int:
        done = 0
        for k in range(per_client):
            q = questions[(c * per_client + k) % len(questions)]
            r = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": q}], max_tokens=max_tokens, temperature=1.0
            )
            done += r.usage.completion_tokens
        return done

    async with client:
        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*[one(c) for c in range(concurrency)]))
        seconds = time.perf_counter() - started
    return {
        "clients": concurrency,
        "requests": concurrency * per_client,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory or hub id (default: build the tiny model)")
    parser.add_argument(
        "--max-tokens", type=int, default=256, help="completion budget of every request (a chat answer)"
    )
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--sequential-requests", type=int, default=16)
    parser.add_argument(
        "--num-cpus", type=float, default=None, help="CPUs of the model replica (default: all but the router's)"
    )
    parser.add_argument("--num-gpus", type=float, default=1.0 if torch.cuda.is_available() else 0.0)
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    workdir = tempfile.mkdtemp(prefix="serve-bench-")
    tiny = load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={workdir}"])
    model_dir = args.model or str(run_pipeline(tiny) / "models" / "base")
    num_cpus = args.num_cpus if args.num_cpus is not None else max(1.0, cores - 0.5)
    cfg = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={workdir}",
            f"serve.port={free_port()}",
            "serve.max_batch_size=64",
            f"serve.models=[{{name: bench, path: '{model_dir}', num_cpus: {num_cpus}, num_gpus: {args.num_gpus},"
            " max_replicas: 1}]",
        ],
    )
    questions = first_questions(256)

    baseline = sequential(model_dir, questions[: args.sequential_requests], args.max_tokens)
    print(f"sequential batch-1 generate: {baseline['tokens_per_s']} tok/s", flush=True)
    url = start_serve(cfg)
    asyncio.run(clients(url, "bench", questions, 8, 1, args.max_tokens))  # warm up
    levels = []
    for level in args.levels:
        result = asyncio.run(clients(url, "bench", questions, level, max(3, 32 // level), args.max_tokens))
        result["speedup"] = round(result["tokens_per_s"] / baseline["tokens_per_s"], 2)
        levels.append(result)
        print(f"hf engine, {level:>2} clients: {result['tokens_per_s']} tok/s (x{result['speedup']})", flush=True)
    batches = (
        serve.get_deployment_handle("model-bench", app_name=cfg.serve.app_name).stats.remote().result()["batch_sizes"]
    )
    serve.shutdown()

    device = torch.cuda.get_device_name(0) if args.num_gpus and torch.cuda.is_available() else f"cpu x{cores}"
    result = {
        "model": model_dir,
        "device": device,
        "max_tokens": args.max_tokens,
        "sequential": baseline,
        "serve": levels,
        "batch_sizes": {str(k): v for k, v in sorted(batches.items())},
        "target_speedup_at_64": 8.0,
    }
    out = ROOT / "bench/results/serve_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    top = levels[-1]
    print(
        f"serve_throughput: {top['clients']} clients {top['tokens_per_s']} tok/s"
        f" vs sequential {baseline['tokens_per_s']} tok/s "
        f"= x{top['speedup']} (target x8) on {device} -> {out.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
