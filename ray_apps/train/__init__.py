"""Supervised fine-tuning of UserGPT and assistants: Ray Train + DeepSpeed + TRL."""

from ..lazy import lazy_exports

__all__ = ["TrainError", "run_train"]
__getattr__ = lazy_exports(
    __name__,
    {
        "TrainError": "run",
        "run_train": "run",
    },
)
