"""Tokenizer and tiny-model factory, chat template, and loading from a path or a hub id."""

from .factory import run_init_model
from .loading import ModelNotFoundError, load_model, load_tokenizer

__all__ = ["ModelNotFoundError", "load_model", "load_tokenizer", "run_init_model"]
