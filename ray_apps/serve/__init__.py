"""OpenAI-compatible model serving on Ray Serve: the `hf` engine (CPU/GPU) or vLLM through ray.serve.llm."""

from .app import app_builder, build_app, model_paths, run_serve, start_serve, stop_serve

__all__ = ["app_builder", "build_app", "model_paths", "run_serve", "start_serve", "stop_serve"]
