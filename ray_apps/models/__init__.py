"""Tokenizer and tiny-model factory, chat template, and loading from a path or a hub id."""

from .loading import ModelNotFoundError, load_model, load_tokenizer

__all__ = ["ModelNotFoundError", "load_model", "load_tokenizer", "run_init_model"]


def __getattr__(name: str):
    # The factory imports torch and the LLaMA classes; the processes that only count tokens (rollout actors,
    # prepare's workers) load the package without it.
    if name == "run_init_model":
        from .factory import run_init_model

        return run_init_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
