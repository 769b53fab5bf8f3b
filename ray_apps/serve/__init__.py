"""OpenAI-compatible model serving on Ray Serve: the `hf` engine (CPU/GPU) or vLLM through ray.serve.llm."""

from ..lazy import lazy_exports

__all__ = ["app_builder", "build_app", "model_paths", "run_serve", "start_serve", "stop_serve"]
__getattr__ = lazy_exports(
    __name__,
    {
        "app_builder": "app",
        "build_app": "app",
        "model_paths": "app",
        "run_serve": "app",
        "start_serve": "app",
        "stop_serve": "app",
    },
)
