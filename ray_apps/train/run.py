"""`realm train`: a Ray Train TorchTrainer whose workers run TRL's SFTTrainer with DeepSpeed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray.data
from ray.train import CheckpointConfig, DataConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from ..config import PipelineConfig, write_run_config
from ..errors import StartError
from ..layout import PreparedData, RunLayout, split_files
from ..models.base import base_reference, resolve_model
from ..models.chat_format import load_chat_tokenizer
from ..models.loading import load_model_config
from ..runtime import Ask, check_fits
from .export import FINAL_MARKER, MODEL_DIR
from .format_check import check_training_data
from .views import Role

OUTPUT_NAMES = {"user": "usergpt", "assistant": "baseline"}


class TrainError(StartError, ValueError):
    """A training run that cannot start (or left no model); the message names the problem."""


def _paths(config: PipelineConfig, role: Role) -> dict[str, str]:
    cfg, layout = config.train, RunLayout(config)
    return {
        "data": cfg.data or str(layout.real.root),
        "model": resolve_model(cfg.base_model or base_reference(config), config),
        "output": cfg.output or str(layout.model(OUTPUT_NAMES[role])),
        "storage": cfg.storage_path or str(layout.ray_train),
    }


def _read(data: str, split: str) -> list[pa.Table]:
    """A split of a dataset directory: `realm prepare` output, or a `realm rollout` output (all ``train``), read by
    the driver, one table per file. Every worker then iterates the whole split from the object store (it holds it in
    memory anyway, ``worker.py``): no Ray Data read tasks to start first (``bench/train_start.py``)."""
    return [pq.read_table(f) for f in split_files(data, split)]


def _check(config: PipelineConfig, role: Role, paths: dict, train: list[pa.Table], evaluation: list[pa.Table]) -> None:
    """What a worker would find minutes later, found in the driver: data, length and the chat format."""
    cfg = config.train
    if not sum(t.num_rows for t in train):
        where = PreparedData(Path(paths["data"])).split("train")
        raise TrainError(f"empty dataset: no training conversations in {where} (run `realm prepare` first)")
    if cfg.eval_data and not evaluation:
        where = PreparedData(Path(cfg.eval_data)).split("eval")
        raise TrainError(f"train.eval_data: no eval split in {where} (a `realm prepare` output)")
    positions = getattr(load_model_config(paths["model"], config.model.hf_token_env), "max_position_embeddings", None)
    if positions is not None and cfg.max_length > positions:
        raise TrainError(
            f"train.max_length={cfg.max_length} is larger than the model's {positions} positions ({paths['model']})"
        )
    tokenizer = load_chat_tokenizer(paths["model"], config.model.chat_template, config.model.hf_token_env)
    check_training_data(tokenizer, train, cfg, role)


def run_train(config: PipelineConfig, role: Role, run_name: str | None = None) -> dict:
    """Train ``role`` ("user": UserGPT on the swapped view; "assistant": on the normal view).

    The Ray Train run is ``run_name`` (default ``<run.name>-<output directory name>``): resubmitting
    it resumes from its last checkpoint, or, when it finished, exports its model again. Returns the
    final metrics, with ``output`` set to the exported Hugging Face directory.
    """
    paths = _paths(config, role)
    output = Path(paths["output"])
    config = config.model_copy(update={"train": config.train.for_model(output.name)})
    name = run_name or f"{config.run.name}-{output.name}"
    result = _last_result(f"{paths['storage'].rstrip('/')}/{name}")
    if result is not None and _export(result, output):
        print(f"[train {role}] run {name} finished before: exported its final model, trained nothing", flush=True)
    else:
        result = _fit(config, role, paths, name)
        if result.checkpoint is None:
            raise TrainError(f"run {name} ended without a checkpoint")
        if not _export(result, output):
            raise TrainError(f"the last checkpoint of run {name} holds no final model")
    write_run_config(config, output)
    metrics = {**result.metrics, "output": str(output)}
    print(
        f"[train {role}] done: step {metrics.get('step')}, eval loss {metrics.get('eval_loss_first')} -> "
        f"{metrics.get('eval_loss_last')}; model -> {output}",
        flush=True,
    )
    return metrics


def _fit(config: PipelineConfig, role: Role, paths: dict, name: str) -> Result:
    cfg = config.train
    workers = Ask(
        "train.num_workers x train.cpus_per_worker (use_gpu: 1 GPU)", cfg.cpus_per_worker, cfg.use_gpu, cfg.num_workers
    )
    check_fits(config.ray, f"train {role}", [workers])
    train, evaluation = _read(paths["data"], "train"), _read(cfg.eval_data or paths["data"], "eval")
    _check(config, role, paths, train, evaluation)
    datasets = {
        "train": ray.data.from_arrow(train),
        **({"eval": ray.data.from_arrow(evaluation)} if evaluation else {}),
    }
    # Ray Train's print patch logs every print of a worker, also those a library captures (dill prints
    # disassembled bytecode to a buffer when datasets fingerprints TRL's functions)
    env = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0", **({} if cfg.use_gpu else {"DS_ACCELERATOR": "cpu"})}
    trainer = TorchTrainer(
        train_loop_per_worker=_loop,
        train_loop_config={
            "train": cfg.model_dump(mode="json"),
            "role": role,
            "model_path": paths["model"],
            "chat_template": config.model.chat_template,
            "token_env": config.model.hf_token_env,
            "seed": config.run.seed,
        },
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=paths["storage"],
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            worker_runtime_env={"env_vars": env},
        ),
        datasets=datasets,
        # Every worker sees the whole split; the Hugging Face sampler shards it by rank.
        dataset_config=DataConfig(datasets_to_split=[]),
    )
    return trainer.fit()


def _last_result(run_path: str) -> Result | None:
    """The result of an earlier run of this name with a checkpoint: when that checkpoint holds the final model,
    resubmitting the run exports it again without starting workers; a run that stopped part-way resumes from it in
    its workers (``worker.py``)."""
    try:
        result = Result.from_path(run_path)
    except RuntimeError:  # no such run yet, or none of its checkpoints was registered
        return None
    return result if result.checkpoint is not None else None


def _export(result: Result, output: Path) -> bool:
    """Copy the final model of ``result``'s last checkpoint to ``output``; False when it holds none."""
    with result.checkpoint.as_directory() as directory:
        if not (Path(directory) / FINAL_MARKER).is_file():
            return False
        shutil.rmtree(output, ignore_errors=True)
        shutil.copytree(Path(directory) / MODEL_DIR, output)
    return True


def _loop(loop: dict) -> None:
    from .worker import train_loop_per_worker  # imported in the worker, where DS_ACCELERATOR is set

    train_loop_per_worker(loop)
