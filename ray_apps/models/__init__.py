"""Tokenizer and tiny-model factory, chat template, and loading from a path or a hub id."""

from ..lazy import lazy_exports

__all__ = ["ModelNotFoundError", "load_model", "load_tokenizer", "run_init_model"]
__getattr__ = lazy_exports(
    __name__,
    {
        "ModelNotFoundError": "loading",
        "load_model": "loading",
        "load_tokenizer": "loading",
        "run_init_model": "factory",
    },
)
