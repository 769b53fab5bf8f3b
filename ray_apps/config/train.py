"""The `realm train` section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..conversation import SIMULATOR_SYSTEM_PROMPT
from .section import Section


class LoraConfig(Section):
    enabled: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights; merged on export.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], description="Module names that get adapters."
    )


class TrainOverrides(Section):
    """Keys of one model's training that replace the shared ones (null keeps the shared value)."""

    num_epochs: float | None = Field(None, gt=0, description="Passes over the training set.")
    max_steps: int | None = Field(None, ge=-1, description="Stop after this many optimizer steps; -1 runs num_epochs.")
    learning_rate: float | None = Field(None, gt=0, description="Peak learning rate.")
    warmup_ratio: float | None = Field(None, ge=0, lt=1, description="Share of steps spent warming up.")
    effective_batch_size: int | None = Field(None, ge=1, description="Sequences per optimizer step over all workers.")


class TrainConfig(Section):
    data: str | None = Field(
        None, description="Prepared dataset directory (`realm prepare` output); null: <workdir>/real."
    )
    eval_data: str | None = Field(
        None,
        description="Prepared dataset whose eval split measures the run (e.g. real sessions for a model trained on "
        "simulated ones); null: train.data's.",
    )
    base_model: str | None = Field(
        None, description="Model to fine-tune (hub id or path); null: model.base or <workdir>/models/base."
    )
    output: str | None = Field(None, description="Exported model directory; null: <workdir>/models/<usergpt|baseline>.")
    max_length: int = Field(2048, ge=16, description="Longest training sequence in tokens (packed block length).")
    packing: bool = Field(
        True, description="Padding-free packing: sequences share a row, attention never crosses them."
    )
    end_marker: bool = Field(
        True, description="User view: end naturally finished conversations with <|endconversation|>."
    )
    simulator_prompt: str = Field(
        SIMULATOR_SYSTEM_PROMPT, description="User view: the simulator's system prompt (replaces the original)."
    )
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate.")
    num_epochs: float = Field(3, gt=0, description="Passes over the training set.")
    max_steps: int = Field(-1, ge=-1, description="Stop after this many optimizer steps; -1 runs num_epochs.")
    effective_batch_size: int = Field(
        128, ge=1, description="Sequences (packed rows when packing) per optimizer step over all workers."
    )
    per_device_batch_size: int = Field(4, ge=1, description="Sequences per worker per micro-step.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    zero_stage: int = Field(3, description="DeepSpeed ZeRO stage: 0, 2 or 3.")
    offload_optimizer: bool = Field(False, description="ZeRO: keep optimizer states in CPU memory.")
    offload_params: bool = Field(False, description="ZeRO-3: keep parameters in CPU memory.")
    bf16: bool = Field(True, description="Train in bfloat16.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    num_workers: int = Field(8, ge=1, description="Ray Train workers.")
    use_gpu: bool = Field(True, description="One GPU per worker.")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker (leave some free for Ray Data).")
    storage_path: str | None = Field(
        None, description="Ray Train storage (local dir, s3:// or gs://); null: <workdir>/ray_train."
    )
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept in storage (CheckpointConfig.num_to_keep).")
    max_failures: int = Field(
        1, ge=-1, description="Worker-failure restarts from the last checkpoint; -1 is unlimited."
    )
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    eval_steps: int = Field(
        50, ge=1, description="Evaluate every N optimizer steps (and before the first and after the last)."
    )
    logging_steps: int = Field(10, ge=1, description="Log progress every N optimizer steps.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA through peft.")
    models: dict[str, TrainOverrides] = Field(
        default_factory=dict,
        description="Per model, by its output directory's name (usergpt, baseline, realm): keys that replace the "
        "ones above for that model, e.g. more epochs for the simulator.",
    )
    fail_at_step: int | None = Field(
        None, ge=1, description="Testing only: fail once at this step to exercise recovery."
    )

    @field_validator("zero_stage")
    @classmethod
    def _zero_stage(cls, value: int) -> int:
        if value not in (0, 2, 3):
            raise ValueError(f"ZeRO stage must be 0, 2 or 3, got {value}")
        return value

    @model_validator(mode="after")
    def _steps_fit(self) -> TrainConfig:
        per_step = self.per_device_batch_size * self.num_workers
        for key, overrides in [("", self), *((f"models.{name}.", o) for name, o in self.models.items())]:
            if overrides.max_steps == 0:
                raise ValueError(f"{key}max_steps: 0 trains nothing (-1 runs num_epochs, else at least 1)")
            size = overrides.effective_batch_size
            if size is not None and size % per_step:
                raise ValueError(
                    f"{key}effective_batch_size={size} is not a multiple of "
                    f"per_device_batch_size x num_workers = {per_step}"
                )
        return self

    def for_model(self, name: str) -> TrainConfig:
        """This section with ``models[name]``'s keys applied (itself when it has none)."""
        overrides = self.models.get(name)
        if overrides is None:
            return self
        return self.model_validate(self.model_dump() | overrides.model_dump(exclude_none=True))
