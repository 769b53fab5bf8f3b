"""Evaluation: benchmark answers, LLM judge, results, dataset statistics, simulator fidelity."""

from ..lazy import lazy_exports

__all__ = ["EvalError", "FormatError", "run_answers", "run_judge", "run_show", "run_simulator", "run_stats"]
__getattr__ = lazy_exports(
    __name__,
    {
        "EvalError": "jobs",
        "FormatError": "fastchat",
        "run_answers": "answers",
        "run_judge": "judge",
        "run_show": "show",
        "run_simulator": "simulator",
        "run_stats": "stats",
    },
)
