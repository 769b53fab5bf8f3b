"""Supervised fine-tuning of UserGPT and assistants: Ray Train + DeepSpeed + TRL."""

from .run import TrainError, run_train

__all__ = ["TrainError", "run_train"]
