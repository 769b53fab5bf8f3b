"""Load a model or tokenizer from a local directory or a hub id, through one code path.

transformers (and with it torch) is imported on the first load, not with this module: the processes that only
count tokens without a tokenizer (rollout and eval actors, the endpoint governor) start seconds sooner.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import ConfigError
from ..errors import StartError


class ModelNotFoundError(StartError, FileNotFoundError):
    """A model reference that is neither a local directory nor a reachable hub id."""


def _source(name_or_path: str, token_env: str) -> dict:
    """``from_pretrained`` keyword arguments for a local path or a hub id."""
    looks_local = name_or_path.startswith((".", "/", "~")) or Path(name_or_path).exists()
    if looks_local:
        path = Path(name_or_path).expanduser()
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise ModelNotFoundError(f"model path does not exist or is not a Hugging Face directory: {name_or_path}")
        return {"pretrained_model_name_or_path": str(path), "local_files_only": True}
    # A hub id; the token (if any) comes from the environment and is never stored.
    return {"pretrained_model_name_or_path": name_or_path, "token": os.environ.get(token_env) or None}


def _load(loader: str, name_or_path: str, token_env: str, **kwargs):
    import transformers

    source = _source(name_or_path, token_env)
    try:
        return getattr(transformers, loader).from_pretrained(**source, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"cannot load {name_or_path!r}: {exc}. Give a local directory, or a hub id with network access "
            f"(and a token in ${token_env} for gated models)."
        ) from None


def load_tokenizer(name_or_path: str, token_env: str = "HF_TOKEN", **kwargs):
    return _load("AutoTokenizer", name_or_path, token_env, **kwargs)


def load_model(name_or_path: str, token_env: str = "HF_TOKEN", **kwargs):
    return _load("AutoModelForCausalLM", name_or_path, token_env, **kwargs)


def load_classifier(name_or_path: str, token_env: str = "HF_TOKEN", **kwargs):
    return _load("AutoModelForSequenceClassification", name_or_path, token_env, **kwargs)


def load_model_config(name_or_path: str, token_env: str = "HF_TOKEN", **kwargs):
    return _load("AutoConfig", name_or_path, token_env, **kwargs)


def context_length(name_or_path: str, token_env: str = "HF_TOKEN") -> int:
    """The longest sequence the model accepts (``max_position_embeddings`` of its text config)."""
    length = getattr(load_model_config(name_or_path, token_env).get_text_config(), "max_position_embeddings", None)
    if not length:
        raise ConfigError(
            f"serve.max_model_len: {name_or_path}'s config has no max_position_embeddings; set the length"
        )
    return length
