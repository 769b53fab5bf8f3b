"""Synthesising sessions: Ray Data actors drive the user simulator and the assistant through endpoints."""

from ..lazy import lazy_exports

__all__ = ["RolloutError", "run_rollout"]
__getattr__ = lazy_exports(
    __name__,
    {
        "RolloutError": "driver",
        "run_rollout": "driver",
    },
)
