"""Serving the pipeline's own models while a stage talks to them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..config import PipelineConfig, ServedModelConfig


@contextmanager
def serving(config: PipelineConfig, names: list[str]) -> Iterator[None]:
    """Serve ``names`` from ``<workdir>/models`` while the block runs (replica settings from ``serve.models``
    when listed there); stopped after, which frees their CPUs and GPUs for the next stage."""
    if not names:
        yield
        return
    from ..serve import start_serve, stop_serve

    listed = {m.name: m for m in config.serve.models}
    template = config.serve.models[0] if config.serve.models else ServedModelConfig(name=names[0])
    models = [
        listed.get(name) or template.model_copy(update={"name": name, "path": None}) for name in dict.fromkeys(names)
    ]
    served = config.model_copy(update={"serve": config.serve.model_copy(update={"models": models})})
    url = start_serve(served)
    print(f"[pipeline] serving {', '.join(m.name for m in models)} at {url} (engine {config.serve.engine})", flush=True)
    try:
        yield
    finally:
        stop_serve(served, tag="pipeline")
