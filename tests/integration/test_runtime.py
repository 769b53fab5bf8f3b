"""How a command joins Ray when no address is configured."""

import re
import subprocess
import sys

import pytest

from ..helpers import ROOT

pytestmark = pytest.mark.integration

JOIN = """
import ray
from ray_apps.config import RayConfig
from ray_apps.runtime import ensure_ray
ensure_ray(RayConfig(num_cpus=2))
print("joined", ray.get_runtime_context().gcs_address, "nodes", len(ray.nodes()))
"""


def test_a_local_ray_start_cluster_is_joined_although_num_cpus_is_set(head):
    run = subprocess.run(
        [sys.executable, "-c", JOIN], cwd=ROOT, env=head["env"], capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stderr[-3000:]
    port = head["gcs"].rsplit(":", 1)[1]  # Ray names the node by the machine's address, not loopback's
    assert re.search(rf"joined [\d.]+:{port} nodes 1", run.stdout), run.stdout  # the running cluster, not a new one
    assert "joining the local Ray cluster started with `ray start` (ray.num_cpus=2 is for a new one)" in run.stderr
