"""Rollout and training spread over a two-node cluster on one machine."""

import json
import subprocess
import sys

import pytest

from ..helpers import ROOT

pytestmark = pytest.mark.integration


def test_rollout_and_training_run_on_both_nodes(prepared_sample, tiny_model_dir, tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tests" / "multinode_run.py"),
            str(prepared_sample),
            str(tiny_model_dir),
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["nodes"]) == 2 and result["sessions"] > 0
    assert result["rollout"] == result["nodes"], result  # session actors on both nodes
    assert result["train"] == result["nodes"], result  # one training worker on each node
