"""ShareGPT ingestion: clean, deduplicate, segment and split, on Ray Data."""

from ..lazy import lazy_exports

__all__ = ["PrepareError", "run_prepare"]
__getattr__ = lazy_exports(
    __name__,
    {
        "PrepareError": "prepare",
        "run_prepare": "prepare",
    },
)
