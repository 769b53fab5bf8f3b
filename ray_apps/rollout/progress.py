"""A run's progress, read from the shards its actors write: the driver learns of finished sessions within a second
of their shard's rename, at any run size (Ray Data hands a block's rows back only when the whole block is done)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from ray.util import metrics

from ..governor import tripped
from ..layout import RolloutData
from .store import Tally, read_shard, shard_files

POLL_S = 1.0
STOP_GRACE_S = 10.0  # after a breaker opened: how long the batches in flight may take to write their shards


class ShardWatcher:
    """The outcomes of the shards that appear after it starts, tallied once each."""

    def __init__(self, output: Path):
        self.directory = RolloutData(output).shards
        self.seen = {p.name for p in shard_files(output)}
        self.tally = Tally()

    def poll(self) -> None:
        if not self.directory.is_dir():
            return
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".jsonl") and entry.name not in self.seen:
                self.seen.add(entry.name)
                for outcome in read_shard(Path(entry.path)):
                    self.tally.add(outcome)

    @property
    def completion_tokens(self) -> int:
        return sum(u["completion_tokens"] for u in self.tally.usage.values())


def follow(rows: Iterable, total: int, governors: list, output: Path, interval: float) -> tuple[str | None, Tally]:
    """Drive the run (consume ``rows`` in a thread) while the shards say how far it is: a progress bar and the
    ``realm_rollout_done`` gauge each second, a line every ``interval`` s (the first as soon as seeds finish).
    Returns why a circuit breaker opened (the run then stops) or None, and the tally of this run's outcomes."""
    from tqdm.auto import tqdm

    watcher, stop, errors = ShardWatcher(output), threading.Event(), []

    def drain() -> None:
        try:
            for _ in rows:
                if stop.is_set():
                    break
        except BaseException as exc:  # raised in the caller
            errors.append(exc)

    driver = threading.Thread(target=drain, name="realm-rollout", daemon=True)
    driver.start()
    done_metric = metrics.Gauge("realm_rollout_done", "Seeds finished in this run.")
    started, printed, reason = time.time(), None, None
    try:
        with tqdm(total=total, desc="rollout", unit="session") as bar:
            while reason is None:
                driver.join(POLL_S)
                running = driver.is_alive()
                watcher.poll()
                counted, seconds = watcher.tally, max(time.time() - started, 1e-9)
                done = min(counted.outcomes, total)  # a seed an actor ran twice (it restarted) counts once
                bar.update(done - bar.n)
                bar.set_postfix(failures=counted.failures, tok_s=f"{watcher.completion_tokens / seconds:.0f}")
                done_metric.set(done)
                if done and (printed is None or time.time() - printed >= interval or not running):
                    printed = time.time()
                    print(
                        f"[rollout] {done}/{total} done, {counted.failures} failed, "
                        f"{watcher.completion_tokens / seconds:.0f} completion tokens/s",
                        flush=True,
                    )
                reason = tripped(governors)
                if not running:
                    break
    finally:
        stop.set()
    if reason is not None:  # the sessions in flight now fail fast (their endpoints read the open breaker): wait for
        driver.join(STOP_GRACE_S)  # the next batch's shard, so what the stop cost is written down too
        watcher.poll()
    if errors and reason is None:
        raise errors[0]
    return reason, watcher.tally
