"""Where sessions land: atomic shards while the run goes, then the dataset, its exports and its card.

Every batch of finished seeds is one shard (``shards/<uuid>.jsonl``), written to a temporary
name and renamed, so a killed run leaves whole shards or none. A rerun reads the shards to skip
finished keys; the final outputs keep one record per key, so a seed that ran twice (an actor
restarted mid-batch) still appears once.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from ..conversation import to_sharegpt
from ..layout import RolloutData
from ..records import write_jsonl, write_records
from .session import RETRYABLE


def write_shard(output: Path, rows: list[dict]) -> None:
    """``rows``: ``{"key", "status": "session" | "failure", "record"}``; appears all at once or not at all."""
    shards = RolloutData(output).shards
    shards.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = shards / f".{name}.tmp"
    with tmp.open("w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, shards / f"{name}.jsonl")


def read_shards(output: Path) -> dict[str, dict]:
    """The outcome of every finished key: a session wins over a failure; of failures, the last read."""
    outcome: dict[str, dict] = {}
    for shard in sorted(RolloutData(output).shards.glob("*.jsonl")):
        for line in shard.read_text().splitlines():
            row = json.loads(line)
            if outcome.get(row["key"], {}).get("status") != "session":
                outcome[row["key"]] = row
    return outcome


def finished_keys(output: Path) -> dict[str, dict]:
    """Keys a rerun skips: sessions, and failures that retrying cannot fix."""
    return {
        k: row
        for k, row in read_shards(output).items()
        if row["status"] == "session" or row["record"]["reason"] not in RETRYABLE
    }


def collect(output: Path, keys: list[str]) -> tuple[list[dict], list[dict]]:
    """The session and failure records of the seeds in ``keys``, one per key, in seed order."""
    outcome = read_shards(output)
    found = [outcome[k] for k in keys if k in outcome]
    return [r["record"] for r in found if r["status"] == "session"], [
        r["record"] for r in found if r["status"] == "failure"
    ]


def write_dataset(output: Path, sessions: list[dict], failures: list[dict]) -> None:
    """``data/sessions.{parquet,jsonl}`` (messages format), ``data/sharegpt.jsonl``, ``failures.jsonl``."""
    files = RolloutData(output)
    write_records(sessions, files.sessions)
    write_records(sessions, files.sessions_jsonl)
    write_jsonl(files.sharegpt, [to_sharegpt(r) for r in sessions])
    write_jsonl(files.failures, failures)
