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
from ..outcomes import Outcome
from ..records import JsonlWriter, RecordWriter
from .session import RETRYABLE

ROLES = (USER, ASSISTANT)


def write_shard(output: Path, outcomes: list[Outcome]) -> None:
    """A shard of ``outcomes``, a row each (``Outcome.to_row``); appears all at once or not at all."""
    shards = RolloutData(output).shards
    shards.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = shards / f".{name}.tmp"
    with tmp.open("w") as f:
        for outcome in outcomes:
            f.write(json.dumps(outcome.to_row(), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, shards / f"{name}.jsonl")


def shard_files(output: Path) -> list[Path]:
    return sorted(RolloutData(output).shards.glob("*.jsonl"))


def read_shard(path: Path) -> Iterator[Outcome]:
    with path.open() as f:
        for line in f:
            yield Outcome.from_row(json.loads(line))


class Place(NamedTuple):
    """Where a key's outcome lies (``shard`` indexes the list the index was built from) and whether a rerun
    keeps it (``final``: a session, or a failure that retrying cannot fix)."""

    shard: int
    line: int
    session: bool
    final: bool


def outcome_index(shards: list[Path], keys: set[str]) -> dict[str, Place]:
    """Where the outcome of every key of ``keys`` lies in ``shards``: a session wins over a failure; of failures,
    the last read."""
    index: dict[str, Place] = {}
    for n, shard in enumerate(shards):
        for line, outcome in enumerate(read_shard(shard)):
            key = outcome.key
            if key not in keys or (key in index and index[key].session):
                continue
            session = outcome.is_session
            index[key] = Place(n, line, session, session or outcome.reason not in RETRYABLE)
    return index


def winners(shards: list[Path], index: dict[str, Place]) -> Iterator[Outcome]:
    """The outcomes ``index`` points at, in shard order, one per key."""
    for n, shard in enumerate(shards):
        for line, outcome in enumerate(read_shard(shard)):
            place = index.get(outcome.key)
            if place is not None and (place.shard, place.line) == (n, line):
                yield outcome


class Tally:
    """What the summary and the card say of outcomes, counted as they stream by."""

    def __init__(self):
        self.sessions = self.failures = self.user_turns = 0
        self.usage = {role: Counter() for role in ROLES}
        self.stop_reasons, self.failure_reasons, self.rejected = Counter(), Counter(), Counter()

    def add(self, outcome: Outcome) -> None:
        if outcome.is_session:
            self.sessions += 1
            self.user_turns += outcome.user_turns
            self.stop_reasons[outcome.stop_reason] += 1
        else:
            self.failures += 1
            self.failure_reasons[outcome.reason] += 1
        for role, u in outcome.usage.items():
            self.usage[role].update(u)
        self.rejected.update(outcome.rejected_user_turns)

    @property
    def outcomes(self) -> int:
        return self.sessions + self.failures


def tally(shards: list[Path], index: dict[str, Place]) -> Tally:
    counted = Tally()
    for outcome in winners(shards, index):
        counted.add(outcome)
    return counted


def write_dataset(output: Path, shards: list[Path], index: dict[str, Place]) -> Tally:
    """``data/sessions.{parquet,jsonl}`` (messages format), ``data/sharegpt.jsonl`` and ``failures.jsonl`` from the
    outcomes ``index`` points at, in one pass over ``shards``; returns their tally."""
    files, counted = RolloutData(output), Tally()
    with (
        RecordWriter(files.sessions) as parquet,
        RecordWriter(files.sessions_jsonl) as jsonl,
        JsonlWriter(files.sharegpt) as sharegpt,
        JsonlWriter(files.failures) as failures,
    ):
        for outcome in winners(shards, index):
            counted.add(outcome)
            if outcome.is_session:
                parquet.write(outcome.record)
                jsonl.write(outcome.record)
                sharegpt.write(to_sharegpt(outcome.record))
            else:
                failures.write(outcome.record)
    return counted


def read_failures(output: Path) -> Iterator[dict]:
    """The failure records of the dataset, one at a time."""
    path = RolloutData(output).failures
    if path.is_file():
        with path.open() as f:
            yield from (json.loads(line) for line in f)
