"""The rollout at scale against an endpoint that answers at once: is the driver the bottleneck, when does the console
first show progress, and does the driver's memory grow with the run?

    .venv/bin/python bench/rollout_scale.py [--sessions 10000 100000] [--bare-sessions 10000] [--turns 3]
    .venv/bin/python bench/rollout_scale.py --nodes 2 --actors 1 2 --sessions 5000 --bare-sessions 0

One local Ray cluster, one instant fake OpenAI-compatible endpoint in a process of its own (`tests/fake_endpoint.py`:
the simulator asks ``--turns`` questions, then writes the end marker; 2 x turns + 1 requests a session). For each
size, `realm rollout` runs as its own process (the tiny config's 2 actors, 64 sessions in flight in each),
timed from its start: requests/s, sessions/s, the time of its first progress line, its peak RSS. Against it, side by
side on the same endpoint: a plain asyncio `openai` client playing the same sessions at the same concurrency (128).
Writes bench/results/rollout_scale.json and prints one summary line last. Targets: rollout >= 0.9x the bare
client's requests/s, first progress within 15 s, driver peak RSS at the largest size within 1.2x of the smallest.
With ``--nodes 2 --actors 1 2`` it runs on a two-node `ray.cluster_utils.Cluster` on this machine instead, each size
once per number of actors (64 sessions in flight in each): how requests/s grows with actors across nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from serve_throughput import free_port  # noqa: E402

from ray_apps.config import load_config  # noqa: E402
from ray_apps.conversation import END_OF_CONVERSATION, simulator_view  # noqa: E402

TARGETS = {"rollout_vs_bare": 0.9, "first_progress_s": 15.0, "rss_growth": 1.2}
PROGRESS = re.compile(r"\[rollout\] (\d+)/(\d+) done")


def instant_endpoint(turns: int) -> tuple[subprocess.Popen, str]:
    """The fake endpoint in a process of its own (not this one's event loop or GIL); its process and base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_endpoint", "--port", str(port), "--turns", str(turns)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    server.stdout.readline()  # "serving on <port>"
    return server, f"http://127.0.0.1:{port}/v1"


async def bare_client(url: str, sessions: int, concurrency: int, persona: str) -> dict:
    """The same sessions through a plain AsyncOpenAI client: the fastest a driver could go on this machine."""
    client = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60)
    todo, requests = iter(range(sessions)), 0

    async def worker() -> None:
        nonlocal requests
        for _ in todo:
            messages: list[dict] = []
            while True:
                view = simulator_view(messages, system_prompt=persona)
                r = await client.chat.completions.create(model="fake-user", messages=view, max_tokens=64)
                requests += 1
                text = r.choices[0].message.content
                if text.strip() == END_OF_CONVERSATION:
                    break
                messages.append({"role": "user", "content": text})
                r = await client.chat.completions.create(model="fake-assistant", messages=messages, max_tokens=64)
                requests += 1
                messages.append({"role": "assistant", "content": r.choices[0].message.content})

    started = time.perf_counter()
    async with client:
        await asyncio.gather(*[worker() for _ in range(concurrency)])
    seconds = time.perf_counter() - started
    return {"sessions": sessions, "requests": requests, "seconds": round(seconds, 1), "rps": round(requests / seconds)}


def rollout(url: str, sessions: int, workdir: Path, address: str, extra: list[str]) -> dict:
    """`realm rollout` as a user runs it, in its own process: wall time, first progress, peak RSS."""
    command = [
        sys.executable,
        "-m",
        "ray_apps.cli",
        "rollout",
        "--config",
        str(ROOT / "configs/tiny.yaml"),
        f"run.workdir={workdir}",
        f"rollout.user.base_url={url}",
        f"rollout.assistant.base_url={url}",
        "rollout.user.model=fake-user",
        "rollout.assistant.model=fake-assistant",
        f"rollout.num_sessions={sessions}",
        "rollout.user.max_retries=0",
        "rollout.assistant.max_retries=0",
        *extra,
    ]
    env = {**os.environ, "RAY_ADDRESS": address}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, tail = None, []
    for line in process.stdout:
        match = PROGRESS.search(line)
        if first is None and match and int(match.group(1)) > 0:
            first = time.perf_counter() - started
        tail = (tail + [line.rstrip()])[-20:]
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise SystemExit("rollout failed:\n" + "\n".join(tail))
    summary = json.loads((workdir / "realchat" / "summary.json").read_text())
    requests = sum(u["requests"] for u in summary["usage"].values())
    return {
        "sessions": summary["sessions"],
        "failures": summary["failures"],
        "requests": requests,
        "seconds": round(seconds, 1),
        "seconds_this_run": summary["seconds_this_run"],
        "rps": round(requests / summary["seconds_this_run"]),
        "sessions_per_s": round(summary["sessions"] / summary["seconds_this_run"], 1),
        "first_progress_s": round(first, 1) if first is not None else None,
        "driver_peak_rss_mb": round(usage.ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--bare-sessions", type=int, default=10_000, help="sessions of the bare client")
    parser.add_argument("--turns", type=int, default=3, help="questions of the fake simulator per session")
    parser.add_argument(
        "--set", nargs="*", default=["rollout.sessions_per_actor=64"], help="config overrides of the rollout"
    )
    parser.add_argument("--nodes", type=int, default=1, help="nodes of a simulated cluster (ray.cluster_utils)")
    parser.add_argument("--actors", type=int, nargs="*", default=[], help="rollout.actors to sweep")
    args = parser.parse_args()
    if args.actors:
        return scaling(args)
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    server, url = instant_endpoint(args.turns)
    cfg = load_config(ROOT / "configs/tiny.yaml", args.set).rollout
    concurrency = cfg.actors * cfg.sessions_per_actor
    try:
        bare = asyncio.run(bare_client(url, args.bare_sessions, concurrency, cfg.personas[0]))
        print(f"bare client: {bare}", flush=True)
        runs = {}
        for n in args.sessions:
            with tempfile.TemporaryDirectory(prefix="rollout-scale-") as workdir:
                runs[n] = rollout(url, n, Path(workdir), ray.get_runtime_context().gcs_address, args.set)
            print(f"rollout {n}: {runs[n]}", flush=True)
    finally:
        server.terminate()
    smallest, largest = runs[min(runs)], runs[max(runs)]
    result = {
        "machine": f"{os.cpu_count()} CPUs",
        "concurrency": concurrency,
        "turns": args.turns,
        "bare_client": bare,
        "rollout": runs,
        "rollout_vs_bare": round(smallest["rps"] / bare["rps"], 2),
        "first_progress_s": max(r["first_progress_s"] or float("inf") for r in runs.values()),
        "rss_growth": round(largest["driver_peak_rss_mb"] / smallest["driver_peak_rss_mb"], 2),
        "targets": TARGETS,
    }
    out = ROOT / "bench" / "results" / "rollout_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"rollout {smallest['rps']} req/s vs bare client {bare['rps']} (x{result['rollout_vs_bare']}, target 0.9); "
        f"first progress at {result['first_progress_s']} s (target 15); driver peak RSS "
        f"{smallest['driver_peak_rss_mb']} MB at {min(runs):,} -> {largest['driver_peak_rss_mb']} MB at "
        f"{max(runs):,} sessions (x{result['rss_growth']}, target 1.2)"
    )


def scaling(args) -> None:
    """requests/s by number of actors on a simulated cluster of ``args.nodes`` nodes."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": os.cpu_count(), "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=os.cpu_count())
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    server, url = instant_endpoint(args.turns)
    runs = {}
    try:
        for actors in args.actors:
            with tempfile.TemporaryDirectory(prefix="rollout-scale-") as workdir:
                overrides = [*args.set, f"rollout.actors={actors}"]
                runs[actors] = rollout(url, args.sessions[0], Path(workdir), cluster.address, overrides)
            print(f"{actors} actors: {runs[actors]}", flush=True)
    finally:
        server.terminate()
        ray.shutdown()
        cluster.shutdown()
    least, most = min(runs), max(runs)
    growth = round(runs[most]["rps"] / runs[least]["rps"], 2)
    out = ROOT / "bench" / "results" / "rollout_scale_actors.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"nodes": args.nodes, "runs": runs, "growth": growth}, indent=2) + "\n")
    print(
        f"{args.nodes} nodes: {least} actors {runs[least]['rps']} req/s -> {most} actors {runs[most]['rps']} req/s "
        f"(x{growth})"
    )


if __name__ == "__main__":
    main()
