"""State every actor of a run shares: per-endpoint rate limits and circuit breaker, and the index of
opening questions (global dedup). Each is one small Ray actor the driver creates."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import ray
from datasketch import LeanMinHash, MinHash, MinHashLSH

from ..config import DedupConfig
from ..data.dedup import signature, words


@ray.remote(num_cpus=0)
class EndpointGovernor:
    """Requests- and tokens-per-minute limits (spaced reservations) and an error-rate circuit breaker."""

    def __init__(self, url: str, requests_per_minute: float | None, tokens_per_minute: float | None, error_rate: float, window: int):
        self.url, self.rpm, self.tpm, self.error_rate = url, requests_per_minute, tokens_per_minute, error_rate
        self.next_request = self.next_tokens = time.monotonic()
        self.outcomes: deque[bool] = deque(maxlen=window)
        self.tripped: str | None = None
        self.last_error = ""

    def reserve(self, tokens: int) -> tuple[float, str | None]:
        """Seconds the caller must wait before sending a request of ``tokens``; or why the breaker is open."""
        if self.tripped:
            return 0.0, self.tripped
        now, wait = time.monotonic(), 0.0
        if self.rpm:
            start = max(now, self.next_request)
            self.next_request = start + 60.0 / self.rpm
            wait = start - now
        if self.tpm:
            start = max(now, self.next_tokens)
            self.next_tokens = start + tokens * 60.0 / self.tpm
            wait = max(wait, start - now)
        return wait, None

    def report(self, ok: bool, error: str = "") -> None:
        """One request's outcome after its retries."""
        self.outcomes.append(ok)
        if not ok:
            self.last_error = error
        failures = self.outcomes.count(False)
        if not self.tripped and len(self.outcomes) == self.outcomes.maxlen and failures >= self.error_rate * len(self.outcomes):
            self.tripped = (
                f"circuit breaker open for {self.url}: {failures} of the last {len(self.outcomes)} requests failed "
                f"after retries (last error: {self.last_error})"
            )

    def tripped_reason(self) -> str | None:
        return self.tripped


@ray.remote(num_cpus=0)
class OpeningIndex:
    """Opening questions seen so far in the run: exact (normalised) and near duplicates (MinHash LSH)."""

    def __init__(self, threshold: float):
        self.cfg = DedupConfig(threshold=threshold)
        self.lsh = MinHashLSH(threshold=threshold, num_perm=self.cfg.num_perm, weights=(0.1, 0.9))
        self.exact: set[str] = set()
        self.kept: dict[int, LeanMinHash] = {}
        self.scheme = MinHash(num_perm=self.cfg.num_perm, seed=1).scheme

    def claim(self, text: str) -> bool:
        """True (and remembered) when ``text`` is new; False when it repeats an earlier opening."""
        tokens = words(text)
        key = " ".join(tokens)
        if key in self.exact:
            return False
        near = len(tokens) >= self.cfg.min_first_turn_words
        if near:
            minhash = LeanMinHash(seed=1, hashvalues=np.asarray(signature(tokens, self.cfg)), scheme=self.scheme)
            if any(self.kept[m].jaccard(minhash) >= self.cfg.threshold for m in self.lsh.query(minhash)):
                return False
            self.lsh.insert(len(self.kept), minhash, check_duplication=False)
            self.kept[len(self.kept)] = minhash
        self.exact.add(key)
        return True
