"""`realm pipeline`: the stage graph (``graph.py``), what each stage runs (``steps.py``, serving the models it talks
to with ``serving.py``), and the runner that skips, resumes or redoes each stage (``run.py``)."""

from .run import run_pipeline

__all__ = ["run_pipeline"]
