"""Synthesising sessions: Ray Data actors drive the user simulator and the assistant through endpoints."""

from .driver import RolloutError, run_rollout

__all__ = ["RolloutError", "run_rollout"]
