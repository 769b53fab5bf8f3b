"""Every path under the working directory, and the layout of the datasets the stages write.

``RunLayout.of(config)`` names them; no other module joins ``run.workdir`` with a literal::

    <workdir>/real/        `realm prepare`: parquet/{train,eval}/, jsonl/{train,eval}/, rejects.jsonl, summary.json
    <workdir>/models/<n>/  base (init-model), usergpt, baseline, realm (train)
    <workdir>/realchat/    `realm rollout` (or rollout.output): data/sessions.{parquet,jsonl}, shards/, ...
    <workdir>/eval/        `realm eval` (or eval.output): <benchmark>/ (FastChat layout), stats/, simulator.json
    <workdir>/ray_train/   Ray Train runs (or train.storage_path)
    <workdir>/stages/, manifest.json, report/   `realm pipeline`
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import PipelineConfig

SPLITS = ("train", "eval")
FORMATS = ("parquet", "jsonl")  # of a prepared split


@dataclass(frozen=True)
class PreparedData:
    """A `realm prepare` output directory."""

    root: Path

    def split(self, name: str, fmt: str = "parquet") -> Path:
        return self.root / fmt / name

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


@dataclass(frozen=True)
class RolloutData:
    """A `realm rollout` output directory."""

    root: Path

    @property
    def shards(self) -> Path:
        return self.root / "shards"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sessions(self) -> Path:
        return self.data / "sessions.parquet"

    @property
    def sessions_jsonl(self) -> Path:
        return self.data / "sessions.jsonl"

    @property
    def sharegpt(self) -> Path:
        return self.data / "sharegpt.jsonl"

    @property
    def failures(self) -> Path:
        return self.root / "failures.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def card(self) -> Path:
        return self.root / "README.md"


def split_files(dataset: str | Path, split: str) -> list[Path]:
    """The Parquet files of a split of a dataset directory: a `realm prepare` output's ``parquet/<split>/``,
    or a `realm rollout` output's sessions (all of them ``train``)."""
    directory = PreparedData(Path(dataset)).split(split)
    files = sorted(directory.glob("*.parquet")) if directory.is_dir() else []
    sessions = RolloutData(Path(dataset)).sessions
    if not files and split == "train" and sessions.is_file():
        files = [sessions]
    return files


@dataclass(frozen=True)
class RunLayout:
    root: Path  # the working directory, absolute
    real: PreparedData
    realchat: RolloutData
    eval: Path

    @classmethod
    def of(cls, config: PipelineConfig) -> RunLayout:
        root = Path(config.run.workdir).resolve()
        realchat = Path(config.rollout.output) if config.rollout.output else root / "realchat"
        evaluation = Path(config.eval.output) if config.eval.output else root / "eval"
        return cls(root, PreparedData(root / "real"), RolloutData(realchat), evaluation)

    def model(self, name: str) -> Path:
        return self.root / "models" / name

    @property
    def heldout(self) -> Path:
        """Real conversations no model trained on: the eval split of ``real/``."""
        return self.real.split("eval")

    def bench(self, name: str) -> Path:
        """A benchmark's answers, judgments and results, as FastChat lays them out."""
        return self.eval / name

    @property
    def stats(self) -> Path:
        return self.eval / "stats"

    @property
    def simulator(self) -> Path:
        return self.eval / "simulator.json"

    @property
    def ray_train(self) -> Path:
        return self.root / "ray_train"

    def stage(self, name: str) -> Path:
        return self.root / "stages" / f"{name}.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def resolved_config(self) -> Path:
        return self.root / "resolved_config.yaml"
