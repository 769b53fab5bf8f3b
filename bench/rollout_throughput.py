"""Rollout throughput: `realm rollout` end to end, against (a) the raw engine on the same requests
sent directly and (b) a sequential loop that runs one session at a time (as the reference code did).

    .venv/bin/python bench/rollout_throughput.py [--model PATH_OR_HUB_ID] [--sessions 256]

Without --model it builds the tiny default model (prepare + init-model on the sample corpus) and
serves it as both the simulator and the assistant. (a) replays every request the rollout sent
(each turn's conversation so far) through `AsyncOpenAI` at the rollout's concurrency; (b) runs
sessions one by one with batch-1 `model.generate`. All count completion tokens only. Writes
bench/results/rollout_throughput.json and prints one summary line last. Targets: rollout >= 0.85
of raw, >= 8x sequential.
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
import torch  # noqa: E402
from ray import serve  # noqa: E402
from serve_throughput import free_port  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.conversation import simulator_view  # noqa: E402
from ray_apps.models import load_model, load_tokenizer  # noqa: E402
from ray_apps.pipeline import run_pipeline  # noqa: E402
from ray_apps.rollout import run_rollout  # noqa: E402
from ray_apps.serve import start_serve  # noqa: E402

USER_TOKENS, ASSISTANT_TOKENS = 64, 128


def requests_of(sessions: list[dict], cfg) -> list[dict]:
    """Every chat request the rollout sent: the simulator's view before each user turn, the conversation
    before each answer."""
    out = []
    for s in sessions:
        messages = s["messages"]
        for i, m in enumerate(messages):
            if m["role"] == "user":
                out.append(
                    {
                        "model": cfg.user.model,
                        "messages": simulator_view(messages[:i], system_prompt=s["meta"]["persona"]),
                        "max_tokens": USER_TOKENS,
                        "temperature": cfg.user.temperature,
                        "top_p": cfg.user.top_p,
                    }
                )
            else:
                out.append(
                    {
                        "model": cfg.assistant.model,
                        "messages": messages[:i],
                        "max_tokens": ASSISTANT_TOKENS,
                        "temperature": cfg.assistant.temperature,
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
        "tokens_per_s": round(tokens / seconds, 1),
    }


def sequential(model_dir: str, sessions: int, turns: int) -> dict:
    """The reference: one session at a time, batch-1 generate for every user and assistant turn."""
    model, tokenizer = load_model(model_dir).eval(), load_tokenizer(model_dir)

    def generate(messages: list[dict], max_tokens: int) -> tuple[str, int]:
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=True, temperature=0.8, top_p=0.95)
        new = out[0, inputs["input_ids"].shape[1] :]
        return tokenizer.decode(new, skip_special_tokens=True), len(new)

    tokens, started = 0, time.perf_counter()
    for _ in range(sessions):
        messages = []
        for _ in range(turns):
            question, n = generate(simulator_view(messages), USER_TOKENS)
            messages.append({"role": "user", "content": question})
            answer, m = generate(messages, ASSISTANT_TOKENS)
            messages.append({"role": "assistant", "content": answer})
            tokens += n + m
    seconds = time.perf_counter() - started
    return {
        "sessions": sessions,
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default=None, help="model directory or hub id for both roles (default: build the tiny model)"
    )
    parser.add_argument("--sessions", type=int, default=256)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--sequential-sessions", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=128, help="sessions in flight (over 2 actors)")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    workdir = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    model_dir = args.model or str(
        run_pipeline(load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={workdir}"])) / "models" / "base"
    )
    port = free_port()
    cfg = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={workdir}",
            f"serve.port={port}",
            f"serve.models=[{{name: usergpt, path: '{model_dir}', num_cpus: 0.5}},"
            f" {{name: baseline, path: '{model_dir}', num_cpus: 0.5}}]",
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
        ],
    )
    url = start_serve(cfg)

    base = sequential(model_dir, args.sequential_sessions, args.turns)
    print(f"sequential sessions (batch-1 generate): {base['tokens_per_s']} tok/s", flush=True)
    started = time.perf_counter()
    summary = run_rollout(cfg, str(workdir / "realchat"))
    seconds = time.perf_counter() - started
    tokens = sum(u["completion_tokens"] for u in summary["usage"].values())
    rollout = {
        "sessions": summary["sessions"],
        "failures": summary["failures"],
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
    }
    print(f"rollout: {rollout['tokens_per_s']} tok/s ({summary['sessions']} sessions)", flush=True)
    sessions = [json.loads(line) for line in (workdir / "realchat/data/sessions.jsonl").read_text().splitlines()]
    raw = asyncio.run(
        replay(url, requests_of(sessions, cfg.rollout), cfg.rollout.actors * cfg.rollout.sessions_per_actor)
    )
    print(f"raw engine, same requests: {raw['tokens_per_s']} tok/s", flush=True)
    serve.shutdown()

    result = {
        "model": model_dir,
        "cores": cores,
        "rollout": rollout,
        "raw_engine": raw,
        "sequential": base,
        "rollout_vs_raw": round(rollout["tokens_per_s"] / raw["tokens_per_s"], 3),
        "rollout_vs_sequential": round(rollout["tokens_per_s"] / base["tokens_per_s"], 2),
        "targets": {"rollout_vs_raw": 0.85, "rollout_vs_sequential": 8.0},
    }
    out = ROOT / "bench/results/rollout_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"rollout_throughput: rollout {rollout['tokens_per_s']} tok/s = x{result['rollout_vs_raw']} of raw engine "
        f"({raw['tokens_per_s']}; target 0.85), x{result['rollout_vs_sequential']} of sequential sessions "
        f"({base['tokens_per_s']}; target x8) -> {out.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
