"""The governor of one endpoint for a run: an actor every caller of the run shares, with the endpoint's requests-
and tokens-per-minute limits and its error-rate circuit breaker. In a module of its own: its actor process imports
only this (not the OpenAI client or Ray Data), so it starts in about a second.

A caller asks it before a request only when the endpoint has a limit (``reserve``: the request's place in the
run-wide schedule); it reports outcomes in batches (``report``), and learns from the answer whether the breaker
opened. So an endpoint without limits costs no actor round trip per request (``bench/rollout_scale.py``).
"""

from __future__ import annotations

import time
from collections import deque

import ray

from .config import EndpointConfig


@ray.remote(num_cpus=0)
class EndpointGovernor:
    """One per endpoint and run, shared by every actor: requests- and tokens-per-minute limits (spaced
    reservations) and an error-rate circuit breaker."""

    def __init__(self, url: str, rpm: float | None, tpm: float | None, error_rate: float, window: int):
        self.url, self.rpm, self.tpm, self.error_rate = url, rpm, tpm, error_rate
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

    def report(self, outcomes: list[tuple[bool, str]]) -> str | None:
        """Requests' outcomes after their retries, in the order they ended: ``(ok, error)``; returns why the breaker
        is open, or None."""
        for ok, error in outcomes:
            self._add(ok, error)
        return self.tripped

    def _add(self, ok: bool, error: str) -> None:
        self.outcomes.append(ok)
        if not ok:
            self.last_error = error
        failures = self.outcomes.count(False)
        full = len(self.outcomes) == self.outcomes.maxlen
        if not self.tripped and full and failures >= self.error_rate * len(self.outcomes):
            self.tripped = (
                f"circuit breaker open for {self.url}: {failures} of the last {len(self.outcomes)} requests failed "
                f"after retries (last error: {self.last_error})"
            )

    def tripped_reason(self) -> str | None:
        return self.tripped


def start_governor(cfg: EndpointConfig, url: str, error_rate: float = 1.0, window: int = 20):
    """The governor actor of one endpoint for a run (``error_rate`` 1.0: it opens when all recent requests failed)."""
    return EndpointGovernor.remote(url, cfg.requests_per_minute, cfg.tokens_per_minute, error_rate, window)


def stop_governors(governors) -> None:
    """End a run's governors: nothing else does while a dataset that carried their handles is still referenced."""
    for governor in governors:
        ray.kill(governor, no_restart=True)


def tripped(governors) -> str | None:
    """Why a breaker of ``governors`` opened, or None."""
    return next((r for r in ray.get([g.tripped_reason.remote() for g in governors]) if r), None)
