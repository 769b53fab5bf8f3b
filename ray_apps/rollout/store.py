"""Where sessions land: atomic shards while the run goes, then the dataset, its exports and its tally.

Every batch of finished seeds is one shard (``shards/<uuid>.jsonl``), written to a temporary
name and renamed, so a killed run leaves whole shards or none. A rerun reads the shards to skip
finished keys; the final outputs keep one record per key, so a seed that ran twice (an actor
restarted mid-batch) still appears once.

The driver reads shards as a stream: what it keeps is an index of keys and where each key's outcome lies, never
the records, so finishing and resuming a run take memory by its number of seeds, not by the size of its sessions.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from ..conversation import ASSISTANT, USER, to_sharegpt
from ..layout import RolloutData
from ..records import JsonlWriter, RecordWriter
from .session import RETRYABLE

ROLES = (USER, ASSISTANT)


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


def shard_files(output: Path) -> list[Path]:
    return sorted(RolloutData(output).shards.glob("*.jsonl"))


def read_shard(path: Path) -> Iterator[dict]:
    with path.open() as f:
        for line in f:
            yield json.loads(line)


class Outcome(NamedTuple):
    """Where a key's outcome lies (``shard`` indexes the list the index was built from) and whether a rerun
    keeps it (``final``: a session, or a failure that retrying cannot fix)."""

    shard: int
    line: int
    session: bool
    final: bool


def outcome_index(shards: list[Path], keys: set[str]) -> dict[str, Outcome]:
    """The outcome of every key of ``keys`` in ``shards``: a session wins over a failure; of failures, the last read."""
    index: dict[str, Outcome] = {}
    for n, shard in enumerate(shards):
        for line, row in enumerate(read_shard(shard)):
            key = row["key"]
            if key not in keys or (key in index and index[key].session):
                continue
            session = row["status"] == "session"
            index[key] = Outcome(n, line, session, session or row["record"]["reason"] not in RETRYABLE)
    return index


def winners(shards: list[Path], index: dict[str, Outcome]) -> Iterator[dict]:
    """The rows ``index`` points at, in shard order, one per key."""
    for n, shard in enumerate(shards):
        for line, row in enumerate(read_shard(shard)):
            outcome = index.get(row["key"])
            if outcome is not None and (outcome.shard, outcome.line) == (n, line):
                yield row


class Tally:
    """What the summary and the card say of outcomes, counted as they stream by."""

    def __init__(self):
        self.sessions = self.failures = self.user_turns = 0
        self.usage = {role: Counter() for role in ROLES}
        self.stop_reasons, self.failure_reasons, self.rejected = Counter(), Counter(), Counter()

    def add(self, row: dict) -> None:
        record = row["record"]
        if row["status"] == "session":
            meta = record["meta"]
            self.sessions += 1
            self.user_turns += meta["user_turns"]
            self.stop_reasons[meta["stop_reason"]] += 1
            usage, rejected = meta["usage"], meta["rejected_user_turns"]
        else:
            self.failures += 1
            self.failure_reasons[record["reason"]] += 1
            usage, rejected = record.get("usage", {}), record.get("rejected_user_turns", {})
        for role, u in usage.items():
            self.usage[role].update(u)
        self.rejected.update(rejected)

    @property
    def outcomes(self) -> int:
        return self.sessions + self.failures


def tally(shards: list[Path], index: dict[str, Outcome]) -> Tally:
    counted = Tally()
    for row in winners(shards, index):
        counted.add(row)
    return counted


def write_dataset(output: Path, shards: list[Path], index: dict[str, Outcome]) -> Tally:
    """``data/sessions.{parquet,jsonl}`` (messages format), ``data/sharegpt.jsonl`` and ``failures.jsonl`` from the
    outcomes ``index`` points at, in one pass over ``shards``; returns their tally."""
    files, counted = RolloutData(output), Tally()
    with (
        RecordWriter(files.sessions) as parquet,
        RecordWriter(files.sessions_jsonl) as jsonl,
        JsonlWriter(files.sharegpt) as sharegpt,
        JsonlWriter(files.failures) as failures,
    ):
        for row in winners(shards, index):
            counted.add(row)
            if row["status"] == "session":
                parquet.write(row["record"])
                jsonl.write(row["record"])
                sharegpt.write(to_sharegpt(row["record"]))
            else:
                failures.write(row["record"])
    return counted


def read_failures(output: Path) -> Iterator[dict]:
    """The failure records of the dataset, one at a time."""
    path = RolloutData(output).failures
    if path.is_file():
        with path.open() as f:
            yield from (json.loads(line) for line in f)
