"""The run's index of opening questions (global dedup): one small Ray actor every session asks once.

A session's actor computes its opening's MinHash signature (``sketch``) and the index only looks it up and adds
it, so the one actor does little per session; it reads the openings of the run's earlier sessions from the shards
itself, so a resumed run's driver never holds them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ray

from ..config import DedupConfig
from ..conversation import opening
from ..data.dedup import NearDuplicateIndex, signature, words
from .store import read_shard, shard_files


def sketch(text: str, cfg: DedupConfig) -> tuple[str, np.ndarray | None]:
    """An opening as the index compares it: its normalised words, and their MinHash signature when it is long
    enough for near-duplicate matching."""
    tokens = words(text)
    return " ".join(tokens), signature(tokens, cfg) if len(tokens) >= cfg.min_first_turn_words else None


@ray.remote(num_cpus=0)
class OpeningIndex:
    """Opening questions seen so far in the run: exact (normalised) and near duplicates (MinHash LSH)."""

    def __init__(self, cfg: DedupConfig, output: str, fingerprint: str):
        self.cfg = cfg
        self.near = NearDuplicateIndex(cfg)
        self.exact: set[str] = set()
        for shard in shard_files(Path(output)):  # the run so far: its sessions' openings, in order
            for outcome in read_shard(shard):
                if outcome.is_session and outcome.meta.get("fingerprint") == fingerprint:
                    self.claim_texts([opening(outcome.record["messages"])])

    def claim(self, normalised: str, hashes: np.ndarray | None) -> bool:
        """True (and remembered) when the opening ``sketch`` gave is new; False when it repeats an earlier one."""
        if normalised in self.exact:
            return False
        if hashes is not None:
            minhash = self.near.minhash(hashes)
            if self.near.matches(minhash):
                return False
            self.near.add(len(self.exact), minhash)
        self.exact.add(normalised)
        return True

    def claim_texts(self, texts: list[str]) -> list[bool]:
        """``claim`` for each of ``texts``, in order."""
        return [self.claim(*sketch(text, self.cfg)) for text in texts]
