"""Evaluation: benchmark answers, LLM judge, results, dataset statistics, simulator fidelity."""

from .answers import run_answers
from .fastchat import FormatError
from .jobs import EvalError
from .judge import run_judge
from .show import run_show
from .simulator import run_simulator
from .stats import run_stats

__all__ = ["EvalError", "FormatError", "run_answers", "run_judge", "run_show", "run_simulator", "run_stats"]
