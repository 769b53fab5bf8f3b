"""The `vllm` engine: the same OpenAI API from ``ray.serve.llm`` (vLLM on GPUs).

``ray.serve.llm`` needs vLLM (the ``gpu`` extra), so it is imported only when this engine is
chosen; CPU installs never touch it.
"""

from __future__ import annotations

from ..config import ConfigError, ServeConfig, ServedModelConfig


def llm_config(model: ServedModelConfig, path: str, serve_cfg: ServeConfig) -> dict:
    """Keyword arguments of ``ray.serve.llm.LLMConfig`` for one served model."""
    engine_kwargs = {
        "tensor_parallel_size": model.tensor_parallel_size,
        "enable_prefix_caching": serve_cfg.enable_prefix_caching,  # rollouts resend the whole history each turn
        **({"max_model_len": serve_cfg.max_model_len} if serve_cfg.max_model_len else {}),
        **({"dtype": serve_cfg.dtype} if serve_cfg.dtype != "auto" else {}),
        **serve_cfg.engine_kwargs,
    }
    return {
        "model_loading_config": {"model_id": model.name, "model_source": path},
        "accelerator_type": model.accelerator_type,
        "engine_kwargs": engine_kwargs,
        "deployment_config": {
            "autoscaling_config": {
                "min_replicas": model.min_replicas,
                "max_replicas": model.max_replicas,
                "target_ongoing_requests": model.target_ongoing_requests,
            },
            "max_ongoing_requests": model.max_ongoing_requests,
            "graceful_shutdown_timeout_s": serve_cfg.graceful_shutdown_timeout_s,
        },
    }


def build_vllm_app(models: list[tuple[ServedModelConfig, str]], serve_cfg: ServeConfig):
    try:
        from ray.serve.llm import LLMConfig, build_openai_app
    except ImportError as exc:
        raise ConfigError(
            f"serve.engine=vllm needs vLLM and ray[llm]: pip install 'realm-on-ray[gpu]' ({exc}). "
            "On a machine without a GPU use serve.engine=hf."
        ) from None
    return build_openai_app({"llm_configs": [LLMConfig(**llm_config(m, path, serve_cfg)) for m, path in models]})
