"""Rollout throughput, side by side in one run on one model: `realm rollout` against the raw engine on the same
requests, for each engine (hf, vLLM); hf against vLLM; and session-affine routing against Serve's default at two
hf replicas (tokens/s and prefix-cache hit rate).

    .venv/bin/python bench/rollout_throughput.py [--engine hf|vllm|both] [--model PATH_OR_HUB_ID] [--sessions 128]

Without --model it builds the tiny default model (prepare + init-model on the sample corpus). One model serves both
roles (the simulator and the assistant), one replica using every core (two replicas of half the cores each for the
routing comparison). The raw engine replays every request the rollout sent (each turn's conversation so far)
through `AsyncOpenAI` at the rollout's concurrency. Completion tokens only. Writes
bench/results/rollout_throughput.json and prints one summary line last. Targets: rollout >= 0.9x raw for both
engines; session affinity >= 1.15x the tokens/s of default routing at 2 hf replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402
from serve_throughput import free_port  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.conversation import simulator_view  # noqa: E402
from ray_apps.data import run_prepare  # noqa: E402
from ray_apps.models import run_init_model  # noqa: E402
from ray_apps.rollout import run_rollout  # noqa: E402
from ray_apps.runtime import cluster_has_gpus  # noqa: E402
from ray_apps.serve import start_serve  # noqa: E402

USER_TOKENS, ASSISTANT_TOKENS = 64, 128
TARGETS = {"rollout_vs_raw": 0.9, "session_vs_power_of_two": 1.15}


def requests_of(sessions: list[dict], cfg) -> list[dict]:
    """Every chat request the rollout sent: the simulator's view before each user turn, the conversation
    before each answer."""
    out = []
    for s in sessions:
        messages = s["messages"]
        for i, m in enumerate(messages):
            if m["role"] == "user":
                view, endpoint = simulator_view(messages[:i], system_prompt=s["meta"]["persona"]), cfg.user
            else:
                view, endpoint = messages[:i], cfg.assistant
            out.append(
                {
                    "model": endpoint.model,
                    "messages": view,
                    "max_tokens": endpoint.max_tokens,
                    "temperature": endpoint.temperature,
                    "top_p": endpoint.top_p,
                }
            )
    return out


async def replay(url: str, requests: list[dict], concurrency: int) -> dict:
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=600)
    queue = list(reversed(requests))

    async def worker() -> int:
        tokens = 0
        while queue:
            r = await client.chat.completions.create(**queue.pop())
            tokens += r.usage.completion_tokens
        return tokens

    async with client:
        started = time.perf_counter()
        tokens = sum(await asyncio.gather(*[worker() for _ in range(concurrency)]))
        seconds = time.perf_counter() - started
    return {
        "requests": len(requests),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": rate(tokens, seconds),
    }


def rate(tokens: int, seconds: float) -> float:
    return round(tokens / seconds, 1)


def config(args, workdir: Path, model_dir: str, engine: str, replicas: int, router: str, port: int):
    cpus = max(0.5, (os.cpu_count() or 1) / replicas)
    return load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={workdir}",
            f"serve.engine={engine}",
            f"serve.request_router={router}",
            f"serve.port={port}",
            f"serve.models=[{{name: bench, path: '{model_dir}', num_cpus: {cpus}, num_gpus: {args.num_gpus},"
            f" min_replicas: {replicas}, max_replicas: {replicas}}}]",
            "serve.max_batch_size=128",
            f"serve.kv_cache_gb={args.kv_cache_gb or 'null'}",
            "rollout.user.model=bench",
            "rollout.assistant.model=bench",
            f"rollout.num_sessions={args.sessions}",
            f"rollout.max_turns={args.turns}",
            "rollout.min_turns=1",
            f"rollout.user.max_tokens={USER_TOKENS}",
            f"rollout.assistant.max_tokens={ASSISTANT_TOKENS}",
            "rollout.max_resamples=0",
            "rollout.actors=2",
            f"rollout.sessions_per_actor={args.in_flight // 2}",
            f"rollout.user.tokenizer={model_dir}",
            f"rollout.assistant.tokenizer={model_dir}",
            "rollout.progress_interval_s=30",
            *args.override,
        ],
    )


def measure(cfg, workdir: Path, raw: bool) -> dict:
    """One deployment: the rollout, then (``raw``) the same requests straight to the engine."""
    url = start_serve(cfg)
    started = time.perf_counter()
    summary = run_rollout(cfg, str(workdir / "realchat"))
    seconds = time.perf_counter() - started
    tokens = sum(u["completion_tokens"] for u in summary["usage"].values())
    usage = summary["usage"]
    prompt = sum(u["prompt_tokens"] for u in usage.values())
    result = {
        "sessions": summary["sessions"],
        "failures": summary["failures"],
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": rate(tokens, seconds),
        "prefix_cache_hit_rate": round(sum(u["cached_prompt_tokens"] for u in usage.values()) / max(1, prompt), 3),
    }
    if raw:
        sessions = [json.loads(line) for line in (workdir / "realchat/data/sessions.jsonl").read_text().splitlines()]
        requests = requests_of(sessions, cfg.rollout)
        result["raw_engine"] = asyncio.run(replay(url, requests, cfg.rollout.actors * cfg.rollout.sessions_per_actor))
        result["rollout_vs_raw"] = round(result["tokens_per_s"] / result["raw_engine"]["tokens_per_s"], 3)
    serve.delete(cfg.serve.app_name)
    return result


def tiny_model(workdir: Path) -> str:
    cfg = load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={workdir}"])
    run_prepare(cfg, [str(ROOT / "data/sample")], str(workdir / "prepared"))
    return str(run_init_model(cfg, workdir / "prepared", workdir / "model"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=["hf", "vllm", "both"], default="both")
    parser.add_argument("--model", default=None, help="model directory or hub id for both roles (default: tiny)")
    parser.add_argument("--sessions", type=int, default=128)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=128, help="sessions in flight (over 2 actors)")
    parser.add_argument("--kv-cache-gb", type=float, default=None, help="vLLM's KV cache (GiB; default: the config's)")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs of each hf replica")
    parser.add_argument("--no-routing", action="store_true", help="skip the session vs power-of-two comparison")
    parser.add_argument("--output", default=str(ROOT / "bench/results/rollout_throughput.json"))
    parser.add_argument("--override", action="append", default=[], help="a config override for every deployment")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    # More logical CPUs than cores: the replicas use every core, the router, proxy and rollout actors fit beside.
    ray.init(num_cpus=2 * cores, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    workdir = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    model_dir = args.model or tiny_model(workdir)
    engines = ["hf", "vllm"] if args.engine == "both" else [args.engine]
    port = free_port()  # Serve's proxy keeps the port it started on: every deployment of the run uses it
    result = {"model": model_dir, "cores": cores, "gpus": cluster_has_gpus(), "targets": TARGETS, "engines": {}}
    for engine in engines:
        cfg = config(args, workdir / engine, model_dir, engine, 1, "session", port)
        result["engines"][engine] = r = measure(cfg, workdir / engine, raw=True)
        print(f"{engine}: rollout {r['tokens_per_s']} tok/s, raw {r['raw_engine']['tokens_per_s']}", flush=True)
    if len(engines) == 2:
        result["hf_vs_vllm"] = round(
            result["engines"]["hf"]["tokens_per_s"] / result["engines"]["vllm"]["tokens_per_s"], 3
        )
    if not args.no_routing:
        result["routing"] = {}
        for router in ("power_of_two", "session"):
            cfg = config(args, workdir / router, model_dir, "hf", 2, router, port)
            result["routing"][router] = r = measure(cfg, workdir / router, raw=False)
            print(f"hf x2 {router}: {r['tokens_per_s']} tok/s, hit rate {r['prefix_cache_hit_rate']}", flush=True)
        routing = result["routing"]
        result["session_vs_power_of_two"] = round(
            routing["session"]["tokens_per_s"] / routing["power_of_two"]["tokens_per_s"], 3
        )
    out = Path(args.output).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    parts = [
        f"{e} rollout {r['tokens_per_s']} tok/s = x{r['rollout_vs_raw']} of raw (target 0.9)"
        for e, r in result["engines"].items()
    ]
    if "hf_vs_vllm" in result:
        parts.append(f"hf = x{result['hf_vs_vllm']} of vLLM")
    if "routing" in result:
        hit = {k: v["prefix_cache_hit_rate"] for k, v in result["routing"].items()}
        parts.append(
            f"2 hf replicas: session affinity x{result['session_vs_power_of_two']} of power-of-two (target 1.15), "
            f"prefix-cache hit rate {hit['session']} vs {hit['power_of_two']}"
        )
    print(f"rollout_throughput: {'; '.join(parts)} -> {out}")


if __name__ == "__main__":
    main()
