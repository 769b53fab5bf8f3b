"""The run's index of opening questions (global dedup): one small Ray actor every session asks."""

from __future__ import annotations

import ray

from ..config import DedupConfig
from ..data.dedup import NearDuplicateIndex, signature, words


@ray.remote(num_cpus=0)
class OpeningIndex:
    """Opening questions seen so far in the run: exact (normalised) and near duplicates (MinHash LSH)."""

    def __init__(self, threshold: float):
        self.cfg = DedupConfig(threshold=threshold)
        self.near = NearDuplicateIndex(self.cfg)
        self.exact: set[str] = set()

    def claim(self, text: str) -> bool:
        """True (and remembered) when ``text`` is new; False when it repeats an earlier opening."""
        tokens = words(text)
        key = " ".join(tokens)
        if key in self.exact:
            return False
        if len(tokens) >= self.cfg.min_first_turn_words:
            minhash = self.near.minhash(signature(tokens, self.cfg))
            if self.near.matches(minhash):
                return False
            self.near.add(len(self.exact), minhash)
        self.exact.add(key)
        return True
