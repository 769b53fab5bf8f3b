"""Shared start of the `ray job submit` entry points: the project importable, and the jobs' runtime_env.

``ray job submit --working-dir . -- python jobs/<stage>.py ...`` ships this directory to the cluster;
the runtime_env below adds what every task and actor of the job needs on top of it:

- ``env_vars``: unbuffered logs, no tokenizer thread pools inside Ray workers;
- ``working_dir``: this project, when a script is started directly against a cluster
  (``RAY_ADDRESS=... python jobs/pipeline.py``) rather than through ``ray job submit``;
- ``pip``: the packages of the project's extras named in ``$REALM_PIP_EXTRAS`` (e.g. ``gpu``), for a
  cluster whose nodes were not set up with them (``cluster.yaml`` installs them at node start-up).
"""

import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXCLUDES = [".venv", "runs", "bench/results", "**/__pycache__", "*.egg-info", ".git"]


def runtime_env() -> dict:
    env: dict = {"env_vars": {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}}
    submitted = "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ  # set by the job supervisor for a submitted job's driver
    if os.environ.get("RAY_ADDRESS") and not submitted:
        env |= {"working_dir": str(ROOT), "excludes": EXCLUDES}
    extras = [e.strip() for e in os.environ.get("REALM_PIP_EXTRAS", "").split(",") if e.strip()]
    if extras:
        optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        unknown = [e for e in extras if e not in optional]
        if unknown:
            sys.exit(f"REALM_PIP_EXTRAS: unknown extra(s) {unknown}; pyproject.toml defines {sorted(optional)}")
        env["pip"] = sorted({package for e in extras for package in optional[e]})
    return env
