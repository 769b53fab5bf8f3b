"""Rollout and training on a two-node Ray cluster on this machine (`ray.cluster_utils.Cluster`).

Run by tests/integration/test_multinode.py in its own process (a second cluster cannot share the
test session's driver). Prints one JSON line: the nodes, and the nodes that ran rollout actors and
training workers, read back from Ray's state API.
"""

import json
import sys
import tempfile
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ray_apps.config import load_config  # noqa: E402
from ray_apps.rollout import run_rollout  # noqa: E402
from ray_apps.train import run_train  # noqa: E402
from tests.fake_endpoint import FakeEndpoint, rollout_overrides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(prepared: str, model: str, workdir: str) -> None:
    # its own: no other `ray.init()` on this machine finds this cluster
    temp = tempfile.mkdtemp(prefix="rm", dir="/tmp")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": True, "temp_dir": temp})
    cluster.add_node(num_cpus=3, temp_dir=temp)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    ray.data.DataContext.get_current().enable_progress_bars = False
    fake = FakeEndpoint().start()
    try:
        config = load_config(
            ROOT / "configs/tiny.yaml",
            [
                f"run.workdir={workdir}",
                *rollout_overrides(fake.url),
                "rollout.num_sessions=32",
                "rollout.actors=2",
                f"train.data={prepared}",
                f"train.base_model={model}",
                f"train.storage_path={workdir}/storage",
                "train.max_steps=2",
                "train.eval_steps=2",
                "train.save_steps=2",
                "train.cpus_per_worker=2",  # one worker per 3-CPU node, a CPU left there for Ray Data reads
            ],
        )
        summary = run_rollout(config)
        run_train(config, "user")
    finally:
        fake.stop()
    actors = list_actors(detail=True, limit=10000, raise_on_missing_output=False)
    markers = (("rollout", "SessionRunner"), ("train", "RayTrainWorker"))
    # an actor that never got a node (state API: node_id None) ran nothing: the suite once listed one, its cause unknown
    ran = {kind: sorted({a.node_id for a in actors if m in a.class_name and a.node_id}) for kind, m in markers}
    print(
        json.dumps(
            {"nodes": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]), "sessions": summary["sessions"], **ran}
        )
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:4])
