"""What the start benchmarks share: the medians of two variants' timed runs, written as JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def write_medians(runs: list[dict], key: str, before: str, after: str, output: str) -> dict:
    """The median ``seconds`` of the runs of each variant (``run[key]``) and the speedup of ``after`` over ``before``,
    written to ``output`` with the runs."""
    median = {v: statistics.median(r["seconds"] for r in runs if r[key] == v) for v in (before, after)}
    result = {"runs": runs, "median_seconds": median, "speedup": round(median[before] / median[after], 3)}
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(result, indent=2) + "\n")
    return result
