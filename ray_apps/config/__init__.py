"""One pydantic schema for every stage: loaded from YAML, overridden with dotted ``key=value``.

Every knob has a default and a one-line description. Unknown keys and bad values fail at
start with a message naming the key. Secrets never live here: the config names the
environment variable that holds one (for example ``model.hf_token_env``). Each stage's
section is in a module of its own here; ``PipelineConfig`` holds them all.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from .data import DedupConfig, ModelConfig, ModelInitConfig, PrepareConfig, RayConfig, RunConfig, SegmentConfig
from .endpoint import EndpointConfig
from .eval import AnswerEndpointConfig, BenchmarkConfig, EvalConfig, JudgeEndpointConfig
from .rollout import AssistantEndpointConfig, RolloutConfig, UserEndpointConfig
from .section import ConfigError, Section
from .serve import ServeConfig, ServedModelConfig
from .train import LoraConfig, TrainConfig

__all__ = [
    "AnswerEndpointConfig",
    "AssistantEndpointConfig",
    "BenchmarkConfig",
    "ConfigError",
    "DedupConfig",
    "EndpointConfig",
    "EvalConfig",
    "JudgeEndpointConfig",
    "LoraConfig",
    "ModelConfig",
    "ModelInitConfig",
    "PipelineConfig",
    "PrepareConfig",
    "RayConfig",
    "RolloutConfig",
    "RunConfig",
    "Section",
    "SegmentConfig",
    "ServeConfig",
    "ServedModelConfig",
    "TrainConfig",
    "UserEndpointConfig",
    "load_config",
    "parse_override",
    "write_run_config",
]


class PipelineConfig(Section):
    """The whole pipeline's config; each stage reads its own section."""

    run: RunConfig = Field(default_factory=RunConfig, description="Run name, working directory, seed.")
    ray: RayConfig = Field(default_factory=RayConfig, description="How to reach Ray.")
    prepare: PrepareConfig = Field(
        default_factory=PrepareConfig, description="`realm prepare`: ShareGPT to cleaned conversations."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model and the tiny model factory.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Supervised fine-tuning.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="OpenAI-compatible model serving on Ray Serve.")
    rollout: RolloutConfig = Field(
        default_factory=RolloutConfig, description="Synthesising sessions between the simulator and an assistant."
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="Benchmarks, LLM judge, dataset statistics, simulator fidelity."
    )

    def fingerprint(self) -> str:
        """A short stable hash of the resolved config."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid config:\n" + "\n".join(lines)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"invalid override {dotted!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` to ``("a.b", value)``; the value is read as YAML (numbers, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"invalid override {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PipelineConfig:
    """Read a YAML config (or the defaults), apply ``key=value`` overrides, validate."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    for item in overrides:
        _set_dotted(tree, *parse_override(item))
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def write_run_config(config: PipelineConfig, directory: str | Path) -> str:
    """Write the resolved config and its fingerprint into a run directory; returns the fingerprint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fingerprint = config.fingerprint()
    text = f"# fingerprint: {fingerprint}\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (directory / "resolved_config.yaml").write_text(text)
    (directory / "fingerprint").write_text(fingerprint + "\n")
    return fingerprint
