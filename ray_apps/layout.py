"""Every path under the working directory, and the layout of the datasets the stages write.

``RunLayout(config)`` names them; no other module joins ``run.workdir`` with a literal::

    <workdir>/real/        `realm prepare`: parquet/{train,eval}/, jsonl/{train,eval}/, rejects.jsonl, summary.json
    <workdir>/models/<n>/  base (init-model), usergpt, baseline, realm (train)
    <workdir>/realchat/    `realm rollout` (or rollout.output): data/sessions.{parquet,jsonl}, shards/, ...
    <workdir>/realchat-prompted/   the prompted simulator's rollout (rollout.compare_with; or its output)
    <workdir>/eval/        `realm eval` (or eval.output): <benchmark>/ (FastChat layout), stats/, simulator.json
    <workdir>/ray_train/   Ray Train runs (or train.storage_path)
    <workdir>/stages/, manifest.json, report/   `realm pipeline`
"""

from __future__ import annotations

from pathlib import Path

from .config import PipelineConfig

SPLITS = ("train", "eval")
FORMATS = ("parquet", "jsonl")  # of a prepared split


class PreparedData:
    """A `realm prepare` output directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.rejects, self.summary = self.root / "rejects.jsonl", self.root / "summary.json"

    def split(self, name: str, fmt: str = "parquet") -> Path:
        return self.root / fmt / name


class RolloutData:
    """A `realm rollout` output directory: ``data/`` holds the dataset, ``shards/`` the resume log."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.shards, self.data = self.root / "shards", self.root / "data"
        self.sessions, self.sessions_jsonl = self.data / "sessions.parquet", self.data / "sessions.jsonl"
        self.sharegpt = self.data / "sharegpt.jsonl"
        self.failures, self.summary = self.root / "failures.jsonl", self.root / "summary.json"
        self.card = self.root / "README.md"


def split_files(dataset: str | Path, split: str) -> list[Path]:
    """The Parquet files of a split of a dataset directory: a `realm prepare` output's ``parquet/<split>/``,
    or a `realm rollout` output's sessions (all of them ``train``)."""
    directory = PreparedData(dataset).split(split)
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    sessions = RolloutData(dataset).sessions
    if not files and split == "train" and sessions.is_file():
        files = [sessions]
    return files


class RunLayout:
    """The working directory of ``config`` (absolute) and every path under it."""

    def __init__(self, config: PipelineConfig):
        self.root = Path(config.run.workdir).resolve()
        self.real = PreparedData(self.root / "real")
        self.realchat = RolloutData(config.rollout.output or self.root / "realchat")
        prompted = config.rollout.compare_with
        self.prompted = RolloutData((prompted and prompted.output) or self.root / "realchat-prompted")
        self.eval = Path(config.eval.output) if config.eval.output else self.root / "eval"
        self.heldout = self.real.split("eval")  # real conversations no model trained on
        self.stats, self.simulator = self.eval / "stats", self.eval / "simulator.json"
        self.ray_train, self.report = self.root / "ray_train", self.root / "report"
        self.manifest, self.resolved_config = self.root / "manifest.json", self.root / "resolved_config.yaml"

    def model(self, name: str) -> Path:
        return self.root / "models" / name

    def bench(self, name: str) -> Path:
        """A benchmark's answers, judgments and results, as FastChat lays them out."""
        return self.eval / name

    def log(self, name: str) -> Path:
        """A command's or a stage's full log (the console shows part of it)."""
        return self.root / "logs" / f"{name}.log"

    def stage(self, name: str) -> Path:
        return self.root / "stages" / f"{name}.json"
