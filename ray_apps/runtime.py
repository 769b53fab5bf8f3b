"""Joining Ray: one place that decides how a command connects to a cluster."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass

import ray
import ray.data

from .config import PipelineConfig, RayConfig, ServedModelConfig
from .errors import StartError


def ensure_ray(cfg: RayConfig, runtime_env: dict | None = None) -> None:
    """Connect to ``cfg.address`` (or ``RAY_ADDRESS``), or start a local Ray; no-op if connected.

    ``runtime_env`` applies to every task and actor of this driver (merged with a submitted job's own).
    """
    if ray.is_initialized():
        return
    context = ray.data.DataContext.get_current()
    context.enable_operator_progress_bars = False  # one bar per dataset
    # The high-memory detector asks for a `memory=` request on our actors (rollout sessions, eval jobs) that no
    # config key sets: a dozen console lines a user cannot act on. Ray's own memory monitor still guards the nodes.
    context.issue_detectors_config.detectors = [
        d for d in context.issue_detectors_config.detectors if d.__name__ != "HighMemoryIssueDetector"
    ]
    address = cfg.address or os.environ.get("RAY_ADDRESS")
    options = {"runtime_env": runtime_env, "logging_level": logging.WARNING, "log_to_driver": True}
    if address:
        ray.init(address=address, **options)
    else:
        try:
            ray.init(num_cpus=cfg.num_cpus, **options)
        except ValueError as exc:  # Ray found a local cluster from `ray start`, whose size is already set
            if "existing cluster" not in str(exc):
                raise
            print(
                f"realm: joining the local Ray cluster started with `ray start` (ray.num_cpus={cfg.num_cpus} is for a "
                "new one)",
                file=sys.stderr,
            )
            ray.init(**options)
    if threading.current_thread() is threading.main_thread():
        # Ray's core worker answers SIGTERM (`ray job stop`) with a crash report, a stack dump, before the exit. A stop
        # is not a crash: one line, then the exit unwinds as Ctrl-C does.
        signal.signal(signal.SIGTERM, _stop)


def _stop(signum: int, _frame) -> None:
    # os.write: the handler may run in the middle of a print, and `ray job stop` kills the process 3 s later
    os.write(2, b"realm: stopped (SIGTERM); what it wrote is kept, and the same command resumes\n")
    raise SystemExit(128 + signum)


def cluster_has_gpus() -> bool:
    """Whether the connected Ray cluster has GPUs now (False when not connected)."""
    return ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0


def served_on_gpus(model: ServedModelConfig) -> bool:
    """Whether a served model's replicas take GPUs: it names an accelerator type or asks for GPUs (an autoscaling
    cluster may start with none), or the cluster has GPUs."""
    return bool(model.accelerator_type or model.num_gpus) or cluster_has_gpus()


def vllm_on_cpu(config: PipelineConfig, model_name: str) -> bool:
    """Whether our Serve app serves ``model_name`` with vLLM's CPU engine."""
    model = next((m for m in config.serve.models if m.name == model_name), None)
    return config.serve.engine == "vllm" and model is not None and not served_on_gpus(model)


@dataclass(frozen=True)
class Ask:
    """``count`` units (replicas, workers, actors) of ``cpus`` and ``gpus`` each, as the config keys in ``keys``
    set them; each unit must fit on one node."""

    keys: str
    cpus: float
    gpus: float = 0.0
    count: int = 1


def check_fits(cfg: RayConfig, what: str, asks: list[Ask]) -> None:
    """Fail at start with the keys and the numbers when ``asks`` cannot all fit the connected cluster (Ray would wait
    for them forever); with ``cfg.autoscaling``, say once what it waits for and go on."""
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    have = {r: sum(node.get(r, 0.0) for node in nodes) for r in ("CPU", "GPU")}
    need = {"CPU": sum(a.cpus * a.count for a in asks), "GPU": sum(a.gpus * a.count for a in asks)}
    short = [f"{need[r]:g} {r}s, the cluster has {have[r]:g}" for r in ("CPU", "GPU") if need[r] > have[r] + 1e-9]
    short += [
        f"{a.keys}: one needs {a.cpus:g} CPUs and {a.gpus:g} GPUs on one node, no node has them"
        for a in asks
        if not any(a.cpus <= node.get("CPU", 0) + 1e-9 and a.gpus <= node.get("GPU", 0) + 1e-9 for node in nodes)
    ]
    if not short:
        return
    asked = "; ".join(f"{a.keys} = {a.cpus:g} CPUs{f' + {a.gpus:g} GPUs' if a.gpus else ''} x {a.count}" for a in asks)
    if cfg.autoscaling:
        print(
            f"[{what}] waiting for the autoscaler to add nodes: it needs {', '.join(short)} now ({asked})", flush=True
        )
        return
    raise StartError(
        f"{what} cannot fit this cluster: it needs {'; '.join(short)} ({asked}). Lower those keys, or set "
        "ray.autoscaling: true if the cluster adds nodes on demand"
    )
