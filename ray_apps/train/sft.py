"""Build TRL's SFTTrainer for one worker: arguments, DeepSpeed config, LoRA, token accounting.

Masks come from the chat template's ``{% generation %}`` blocks through TRL's
``assistant_only_loss``; packing is TRL's best-fit-decreasing, padding-free packing, where
position ids restart per sequence and transformers derives a block-diagonal attention mask
from them, so attention never crosses sequences.
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch
from transformers import PreTrainedTokenizerBase
from trl import SFTConfig, SFTTrainer

from ..config import TrainConfig
from ..models.chat_format import end_marker_id, fit_model
from ..models.loading import load_model


def deepspeed_config(cfg: TrainConfig) -> dict:
    """The DeepSpeed config for ``cfg``; no optimizer in it, so the trainer builds a torch one."""
    zero: dict = {"stage": cfg.zero_stage}
    if cfg.zero_stage and cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": cfg.use_gpu}
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
        if cfg.offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": cfg.use_gpu}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.bf16},
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "zero_force_ds_cpu_optimizer": False,  # let a torch optimizer work with offload too
    }


def accumulation_steps(cfg: TrainConfig, world_size: int) -> int:
    """Micro-steps per optimizer step (the config's validation checks that the batch divides evenly)."""
    return cfg.effective_batch_size // (cfg.per_device_batch_size * world_size)


@dataclass
class TokenCounter:
    """Counts the real tokens of every batch the collator builds, and the room they were given: a packed row's
    ``row_length`` (``train.max_length``) under packing, else the padded batch. ``efficiency`` is their ratio."""

    inner: object
    row_length: int | None = None
    real: int = 0
    processed: int = 0

    def __call__(self, examples):
        batch = self.inner(examples)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        self.real += int(mask.sum()) if mask is not None else int(ids.numel())
        self.processed += len(examples) * self.row_length if self.row_length else int(ids.numel())
        return batch

    @property
    def efficiency(self) -> float:
        return self.real / self.processed if self.processed else 0.0


def training_args(
    cfg: TrainConfig, output_dir: str, world_size: int, use_deepspeed: bool, evaluate: bool, seed: int = 0
) -> SFTConfig:
    """TRL's arguments for a run of ``cfg`` on ``world_size`` workers (``seed``: `run.seed`, for the data order,
    dropout and LoRA's initialisation)."""
    return SFTConfig(
        output_dir=output_dir,
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        padding_free=cfg.packing,
        assistant_only_loss=True,
        per_device_train_batch_size=cfg.per_device_batch_size,
        per_device_eval_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=accumulation_steps(cfg, world_size),
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        bf16=cfg.bf16,
        activation_checkpointing=cfg.gradient_checkpointing,
        deepspeed=deepspeed_config(cfg) if use_deepspeed else None,
        use_cpu=not cfg.use_gpu,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.keep_checkpoints,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=cfg.eval_steps,
        eval_on_start=evaluate,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
    )


def lora_config(cfg: TrainConfig, model, trained_tokens: list[int]):
    """peft's LoRA config for ``cfg.lora`` (None when it is off). The tokens the chat format added (their embedding
    rows are new) and the end marker train in full (peft's trainable tokens), the input and output rows both when
    the model does not tie them: otherwise a LoRA model could not learn to end a session."""
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    tokens = trained_tokens
    if not model.config.get_text_config().tie_word_embeddings:
        names = {module: name for name, module in model.named_modules()}
        tokens = {
            names[model.get_input_embeddings()]: trained_tokens,
            names[model.get_output_embeddings()]: trained_tokens,
        }
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        trainable_token_indices=tokens,
        task_type="CAUSAL_LM",
    )


def build_trainer(
    cfg: TrainConfig,
    model_path: str,
    tokenizer: PreTrainedTokenizerBase,
    train: datasets.Dataset,
    evaluation: datasets.Dataset | None,
    output_dir: str,
    *,
    world_size: int = 1,
    use_deepspeed: bool = True,
    token_env: str = "HF_TOKEN",
    seed: int = 0,
) -> tuple[SFTTrainer, TokenCounter]:
    """An SFTTrainer on ``{"messages": [...]}`` rows with loss on the ``assistant`` turns only."""
    args = training_args(cfg, output_dir, world_size, use_deepspeed, evaluation is not None, seed)
    model = load_model(model_path, token_env, dtype=torch.bfloat16 if cfg.bf16 else torch.float32)
    rows = model.get_input_embeddings().weight.shape[0]
    fit_model(model, tokenizer)
    peft_config = lora_config(cfg, model, sorted({*range(rows, len(tokenizer)), end_marker_id(tokenizer)}))
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    head = trainer.model.get_output_embeddings()
    if peft_config is not None and not hasattr(head, "bias"):
        # peft's trainable-tokens wrapper of a tied LM head forwards `weight` (merged with the new rows) but not the
        # head's `bias` (None), which TRL's fused LM head reads
        head.bias = None
    counter = TokenCounter(trainer.data_collator, cfg.max_length if cfg.packing else None)
    trainer.data_collator = counter
    return trainer, counter
