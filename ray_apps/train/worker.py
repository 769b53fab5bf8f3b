"""What each Ray Train worker runs: TRL's SFTTrainer under DeepSpeed, reporting to Ray Train.

Where tokenisation runs, and why: Ray Data reads the prepared Parquet (on the cluster's CPUs)
and hands every worker the whole split; the worker applies the chat template, builds the
assistant masks and packs, through TRL, and the Hugging Face sampler then gives each rank its
share. Tokenising in the worker keeps masks and packing in one library that knows the
template; the text is small next to the training compute, so repeating it per worker is cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import datasets
import ray.train
from ray.train import Checkpoint
from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

from ..config import TrainConfig
from ..models.chat_format import load_chat_tokenizer
from ..records import record_from_row
from .callbacks import EvaluateLastStep, FailOnce, ProgressCallback
from .export import FINAL_MARKER, MODEL_DIR, save_final_model
from .sft import build_trainer
from .views import training_messages


def _split(name: str, role: str, cfg: TrainConfig) -> datasets.Dataset | None:
    try:
        shard = ray.train.get_dataset_shard(name)
    except KeyError:
        return None
    if shard is None:
        return None
    rows = [
        {"messages": training_messages(record_from_row(r), role, cfg.end_marker, cfg.simulator_prompt)}
        for r in shard.iter_rows()
    ]
    return datasets.Dataset.from_list(rows) if rows else None


def train_loop_per_worker(loop: dict) -> None:
    rank = ray.train.get_context().get_world_rank()
    work = Path(tempfile.mkdtemp(prefix=f"realm-{loop['role']}-rank{rank}-"))  # checkpoints are in storage
    try:
        _train(loop, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train(loop: dict, work: Path) -> None:
    cfg = TrainConfig.model_validate(loop["train"])
    role, model_path = loop["role"], loop["model_path"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    resume_from = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        local = checkpoint.to_directory(str(work / "resume"))
        if (Path(local) / FINAL_MARKER).is_file():  # the run already finished: report it again, train nothing
            metrics = json.loads((Path(local) / FINAL_MARKER).read_text())
            ray.train.report(metrics, checkpoint=checkpoint if rank == 0 else None)
            return
        resume_from = os.path.join(local, RayTrainReportCallback.CHECKPOINT_NAME)

    # Ray Train already set up torch.distributed; DeepSpeed must adopt that group before ZeRO-3
    # partitions the weights while the model loads.
    import deepspeed

    deepspeed.init_distributed()
    tokenizer = load_chat_tokenizer(model_path, loop["chat_template"], loop["token_env"])
    train = _split("train", role, cfg)
    evaluation = _split("eval", role, cfg)
    trainer, counter = build_trainer(
        cfg,
        model_path,
        tokenizer,
        train,
        evaluation,
        str(work / "output"),
        world_size=world,
        token_env=loop["token_env"],
        seed=loop["seed"],
    )
    progress = ProgressCallback(counter, role)
    trainer.add_callback(progress)
    trainer.add_callback(EvaluateLastStep())
    trainer.add_callback(RayTrainReportCallback())
    if cfg.fail_at_step and resume_from is None:
        trainer.add_callback(FailOnce(cfg.fail_at_step))
    trainer = prepare_trainer(trainer)
    trainer.train(resume_from_checkpoint=resume_from)

    start_step = json.loads(Path(resume_from, "trainer_state.json").read_text())["global_step"] if resume_from else 0
    history = [
        {"step": log["step"], "eval_loss": log["eval_loss"], "seconds": log.get("seconds")}
        for log in trainer.state.log_history
        if "eval_loss" in log
    ]
    evals = [entry["eval_loss"] for entry in history]
    metrics = {
        "step": trainer.state.global_step,
        "resumed_from_step": start_step,
        "eval_loss_first": evals[0] if evals else None,
        "eval_loss_last": evals[-1] if evals else None,
        "train_loss": next(
            (log["train_loss"] for log in reversed(trainer.state.log_history) if "train_loss" in log), None
        ),
        "packing_efficiency": round(counter.efficiency, 4),
        "tokens_per_second": progress.tokens_per_second(),  # this worker's, of this run's part when it resumed
        "eval_history": history,  # seconds since training began (this run's part, when it resumed)
    }
    final = work / "final"
    save_final_model(trainer, tokenizer, final / MODEL_DIR, model_path, cfg, rank, loop["token_env"])
    if rank == 0:
        (final / FINAL_MARKER).write_text(json.dumps(metrics))
    ray.train.report(metrics, checkpoint=Checkpoint.from_directory(final) if rank == 0 else None)
