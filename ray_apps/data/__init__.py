"""ShareGPT ingestion: clean, deduplicate, segment and split, on Ray Data."""

from .prepare import PrepareError, run_prepare

__all__ = ["PrepareError", "run_prepare"]
