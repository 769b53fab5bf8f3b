"""How a command joins Ray when no address is configured, and what it does when what it asks cannot fit."""

import re
import subprocess
import sys

import pytest
import ray

from ray_apps.config import load_config
from ray_apps.errors import StartError
from ray_apps.runtime import Ask, check_fits
from ray_apps.serve import start_serve

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


def test_an_app_or_training_that_cannot_fit_fails_at_start_naming_its_keys(ray_session, tmp_path, capsys):
    """Two models of half the cluster's CPUs each, beside the ingress's 0.1: Serve would wait for them forever."""
    cpus = ray.cluster_resources()["CPU"]
    half = f"{cpus / 2:g}"
    models = f"serve.models=[{{name: usergpt, num_cpus: {half}}}, {{name: baseline, num_cpus: {half}}}]"
    config = load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={tmp_path}", models])
    with pytest.raises(
        StartError,
        match=rf"serve cannot fit this cluster: it needs {cpus + 0.1:g} CPUs, the cluster "
        rf"has {cpus:g} .*serve\.models\[1\] \(baseline\)\.num_cpus = {half} CPUs x 1",
    ):
        start_serve(config)
    workers = int(cpus) + 1
    with pytest.raises(StartError, match=rf"train user cannot fit this cluster: it needs {workers:g} CPUs"):
        check_fits(config.ray, "train user", [Ask("train.num_workers", 1, 0, workers)])
    grows = load_config(None, ["ray.autoscaling=true"])
    check_fits(grows.ray, "serve", [Ask("serve.models[0] (big).num_cpus", cpus + 1)])  # an autoscaler may add it
    assert "[serve] waiting for the autoscaler to add nodes: it needs" in capsys.readouterr().out
