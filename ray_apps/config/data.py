"""Sections of the run, Ray, `realm prepare` and the base model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..conversation import DEFAULT_ROLE_MAP, ROLES
from .section import Section


class RunConfig(Section):
    name: str = Field("realm", description="Run name, used for run directories and Ray Train runs.")
    workdir: str = Field("runs/realm", description="Directory that holds every stage's output.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed for splits, model initialisation and sampling.")
    console: Literal["quiet", "full"] = Field(
        "quiet",
        description="quiet: the console shows stage lines, progress, problems and results, everything else is only "
        "in <workdir>/logs/<command>.log; full: the console shows everything too.",
    )


class RayConfig(Section):
    address: str | None = Field(None, description="Ray cluster address; null starts or joins a local one.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a new local Ray; null uses all.")
    autoscaling: bool = Field(
        False,
        description="The cluster adds nodes on demand: a stage that asks more than it has now waits for them; false: "
        "it fails at start naming the keys and the numbers.",
    )


class DedupConfig(Section):
    exact: bool = Field(True, description="Drop conversations whose normalised text hash was seen before.")
    near: bool = Field(
        True, description="Drop near duplicates found by MinHash LSH (first user turn and whole conversation)."
    )
    threshold: float = Field(
        0.85, gt=0, le=1, description="Estimated Jaccard similarity at which two texts are near duplicates."
    )
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations.")
    shingle_words: int = Field(3, ge=1, description="Words per shingle for MinHash.")
    min_first_turn_words: int = Field(
        8, ge=1, description="First user turns shorter than this are not near-dedup keys (greetings repeat)."
    )


class SegmentConfig(Section):
    max_tokens: int = Field(2048, ge=16, description="Longest segment, in tokens of the target tokenizer.")
    tokenizer: str | None = Field(
        None,
        description="Target tokenizer (hub id, local path or .gguf file); null: model.base's, or a word/punctuation "
        "approximation when model.base is null (the tiny default, whose tokenizer is trained after prepare).",
    )
    overhead_tokens: int = Field(4, ge=0, description="Chat-template tokens added per message.")


class PrepareConfig(Section):
    inputs: list[str] = Field(
        default_factory=list, description="ShareGPT files or globs (JSON array or JSONL; local or fsspec URL)."
    )
    num_workers: int = Field(2, ge=1, description="Concurrent Ray Data tasks per stage.")
    batch_size: int = Field(512, ge=1, description="Conversations per Ray Data batch.")
    role_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_MAP),
        description="ShareGPT speaker name (lower case) to role; unknown speakers are rejected.",
    )
    html_to_markdown: list[str] = Field(
        default_factory=lambda: ["assistant"],
        description="Roles whose HTML is converted to markdown (ShareGPT exports hold the assistant's as HTML).",
    )
    normalize_whitespace: bool = Field(True, description="Unify newlines, strip trailing spaces, collapse blank lines.")
    merge_consecutive: bool = Field(True, description="Merge consecutive messages of the same role.")
    drop_leading_assistant: bool = Field(True, description="Drop assistant turns before the first user turn.")
    min_turns: int = Field(1, ge=1, description="Fewest user turns a conversation must have.")
    min_chars: int = Field(16, ge=0, description="Fewest characters of content a conversation must have.")
    blocklist: list[str] = Field(
        default_factory=list, description="Phrases (case-insensitive) whose conversations are dropped."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="ISO 639-1 codes to keep (py3langid); empty keeps all."
    )
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Exact and near-duplicate removal.")
    segment: SegmentConfig = Field(default_factory=SegmentConfig, description="Splitting of long conversations.")
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="Share of conversations (by id hash) in the eval split.")
    max_invalid_fraction: float = Field(
        0.25, ge=0, le=1, description="Exit non-zero when more than this share of input records is malformed."
    )

    @field_validator("role_map")
    @classmethod
    def _roles_known(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in ROLES}
        if bad:
            raise ValueError(f"roles must be one of {ROLES}, got {bad}")
        return {k.lower(): v for k, v in value.items()}

    @field_validator("html_to_markdown")
    @classmethod
    def _html_roles_known(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if r not in ROLES]
        if bad:
            raise ValueError(f"roles must be among {ROLES}, got {bad}")
        return value


class ModelInitConfig(Section):
    vocab_size: int = Field(4096, ge=300, description="Byte-level BPE vocabulary size (special tokens included).")
    hidden_size: int = Field(128, ge=8, description="Hidden size of the LLaMA-architecture model.")
    intermediate_size: int = Field(344, ge=8, description="MLP size.")
    num_hidden_layers: int = Field(2, ge=1, description="Transformer layers.")
    num_attention_heads: int = Field(4, ge=1, description="Attention heads.")
    num_key_value_heads: int = Field(2, ge=1, description="Key/value heads (grouped-query attention).")
    max_position_embeddings: int = Field(2048, ge=64, description="Longest sequence the model accepts.")

    @model_validator(mode="after")
    def _heads_fit(self) -> ModelInitConfig:
        if self.hidden_size % (2 * self.num_attention_heads):  # rotary embeddings rotate pairs of a head's dimensions
            raise ValueError(
                f"hidden_size={self.hidden_size} must be a multiple of 2 x num_attention_heads="
                f"{self.num_attention_heads} (an even size per head)"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        return self


class ModelConfig(Section):
    base: str | None = Field(
        None,
        description="Base model: a hub id, a local directory, or a local .gguf file (dequantized once under "
        "<workdir>/models/gguf/). null builds the tiny model with `realm init-model`.",
    )
    chat_template: str = Field(
        "auto",
        min_length=1,
        description="Chat format to train with (and serve and score): auto (the model's own template when it marks "
        "{% generation %}, else TRL's training template for its family, else the built-in one its template renders "
        "like; vicuna for a model without one), chatml, vicuna, or a path to a Jinja file with {% generation %} marks.",
    )
    init: ModelInitConfig = Field(default_factory=ModelInitConfig, description="Tiny model factory settings.")
    hf_token_env: str = Field(
        "HF_TOKEN", description="Environment variable holding a hub token (never written to disk)."
    )
    trust_remote_code: bool = Field(False, description="Allow model code from the hub.")
