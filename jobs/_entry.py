"""Shared start of the `ray job submit` entry points: make the working directory importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
