"""Build and run the serving application from the config: `hf` (our deployments) or `vllm` (ray.serve.llm)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

from ray import serve

from ..config import ConfigError, PipelineConfig, ServedModelConfig, load_config
from ..endpoints import base_url
from ..layout import RunLayout
from ..models.base import base_model
from ..runtime import Ask, check_fits, served_on_gpus
from .routing import request_router_config
from .vllm import build_vllm_app


def model_paths(config: PipelineConfig) -> list[tuple[ServedModelConfig, str]]:
    """Each served model with its source: an absolute local directory (checked now) or a hub id."""
    out = []
    for i, model in enumerate(config.serve.models):
        # `base` is model.base as it is (a GGUF file as its dequantized directory), unless a path says otherwise
        source = model.path or (
            base_model(config) if model.name == "base" else str(RunLayout(config).model(model.name))
        )
        local = Path(source).expanduser()
        if model.path is None or source.startswith((".", "/", "~")) or local.exists():
            if not (local / "config.json").is_file():
                key = f"serve.models[{i}].path" + ("" if model.path else f" (default <workdir>/models/{model.name})")
                raise ConfigError(f"{key}: no model at {local} (train it with `realm train`, or point path at a model)")
            source = str(local.resolve())
        out.append((model, source))
    return out


def build_app(config: PipelineConfig):
    """The Serve application for ``config.serve``: one OpenAI-compatible API over every served model."""
    cfg = config.serve
    models = model_paths(config)
    if cfg.engine == "vllm":
        return build_vllm_app(models, cfg)

    from .model_server import ModelServer
    from .router import OpenAIRouter

    api_key_sha256 = None
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ConfigError(f"serve.api_key_env: environment variable {cfg.api_key_env} is not set")
        api_key_sha256 = hashlib.sha256(key.encode()).hexdigest()  # the key itself never leaves this process
    servers = {}
    for model, path in models:
        servers[model.name] = ModelServer.options(
            name=f"model-{model.name}",
            ray_actor_options={"num_cpus": model.num_cpus, "num_gpus": model.num_gpus},
            autoscaling_config={
                "min_replicas": model.min_replicas,
                "initial_replicas": max(1, model.min_replicas),
                "max_replicas": model.max_replicas,
                "target_ongoing_requests": model.target_ongoing_requests,
            },
            max_ongoing_requests=max(model.max_ongoing_requests, cfg.max_batch_size),
            graceful_shutdown_timeout_s=cfg.graceful_shutdown_timeout_s,
            **request_router_config(cfg),
        ).bind(
            model.name,
            path,
            dtype=cfg.dtype,
            max_batch_size=cfg.max_batch_size,
            batch_wait_timeout_s=cfg.batch_wait_timeout_s,
            token_env=config.model.hf_token_env,
            chunk_interval_s=cfg.stream_interval_s,
            num_cpus=model.num_cpus,
            prefix_cache_mb=cfg.prefix_cache_mb,
        )
    return OpenAIRouter.options(
        name="router",
        ray_actor_options={"num_cpus": cfg.router_num_cpus},
        max_ongoing_requests=max(1000, 4 * sum(m.max_ongoing_requests * m.max_replicas for m, _ in models)),
        graceful_shutdown_timeout_s=cfg.graceful_shutdown_timeout_s,
    ).bind(
        servers,
        {m.name: p for m, p in models},
        max_model_len=cfg.max_model_len,
        max_n=cfg.max_n,
        api_key_sha256=api_key_sha256,
        token_env=config.model.hf_token_env,
    )


def app_builder(args: dict):
    """Entry point for `serve run` / `serve deploy` config files: ``args`` = {config, overrides}."""
    return build_app(load_config(args.get("config"), args.get("overrides", [])))


def app_asks(config: PipelineConfig) -> list[Ask]:
    """What the app's replicas take when it starts: the ingress, and each model's first replicas."""
    cfg = config.serve
    asks = [Ask("serve.router_num_cpus", cfg.router_num_cpus)]
    for i, model in enumerate(cfg.models):
        key, replicas = f"serve.models[{i}] ({model.name})", max(1, model.min_replicas)
        if cfg.engine == "vllm" and served_on_gpus(model):  # GPU bundles of ray.serve.llm's own placement
            asks.append(Ask(f"{key}.tensor_parallel_size", 0.0, model.tensor_parallel_size, replicas))
        elif cfg.engine == "vllm":  # CPU bundles (vllm.py)
            asks.append(Ask(f"{key}.num_cpus", model.num_cpus * model.tensor_parallel_size, 0.0, replicas))
        else:
            asks.append(Ask(f"{key}.num_cpus", model.num_cpus, model.num_gpus, replicas))
    return asks


def start_serve(config: PipelineConfig) -> str:
    """Deploy the app on the connected Ray (Serve's HTTP proxy on serve.host:port); returns the base URL."""
    check_fits(config.ray, "serve", app_asks(config))
    app = build_app(config)
    serve.start(http_options={"host": config.serve.host, "port": config.serve.port})
    serve.run(
        app,
        name=config.serve.app_name,
        route_prefix=config.serve.route_prefix,
        blocking=False,
        logging_config={"enable_access_log": config.serve.access_log},
    )
    return base_url(config)


def stop_serve(config: PipelineConfig, tag: str = "serve", patience_s: float | None = None) -> None:
    """Delete the app and wait until it is gone, its replicas' CPUs and GPUs free again for what runs next.

    Not Serve's blocking `serve.delete`: it gives up after a fixed 60 s, and an app stops in tiers (the ingress,
    then the models), each replica finishing its in-flight requests for up to serve.graceful_shutdown_timeout_s, on
    a controller that a busy node slows down: a finished stage would fail on its cleanup. The patience
    here follows the config (two tiers of grace and 4 minutes more by default)."""
    name, grace = config.serve.app_name, config.serve.graceful_shutdown_timeout_s
    patience_s = 2 * grace + 240 if patience_s is None else patience_s
    serve.delete(name, _blocking=False)  # private (Ray 2.60): Serve has no public delete that does not wait
    started, told = time.monotonic(), False
    while name in serve.status().applications:
        waited = time.monotonic() - started
        if waited > patience_s:
            raise TimeoutError(
                f"serve: app {name!r} is still stopping after {waited:.0f}s (its replicas finish in-flight requests "
                f"for up to serve.graceful_shutdown_timeout_s={grace:g}s each); see `serve status` and the Ray "
                "dashboard's Serve page"
            )
        if waited > 10 and not told:
            print(f"[{tag}] waiting for app {name} to stop (replicas finishing in-flight requests)", flush=True)
            told = True
        time.sleep(0.5)


def run_serve(config: PipelineConfig, *, detach: bool = False) -> str:
    """`realm serve`: deploy, print the endpoint, and serve until interrupted (then shut down gracefully)."""
    url = start_serve(config)
    names = ", ".join(m.name for m in config.serve.models)
    print(f"[serve] {config.serve.app_name}: {names} at {url} (engine {config.serve.engine})", flush=True)
    if detach:
        return url
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print("[serve] serving; Ctrl-C stops", flush=True)
    stop.wait()
    print("[serve] stopping: finishing in-flight requests", flush=True)
    stop_serve(config)
    return url
