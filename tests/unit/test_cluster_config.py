"""cluster.yaml is a valid Ray cluster-launcher config (the schema shipped with Ray), shaped as docs/cluster.md says."""

import json
from pathlib import Path

import jsonschema
import ray
import yaml

from ray_apps.config import load_config

from ..helpers import ROOT


def test_cluster_yaml_validates_against_rays_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    cluster = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(cluster, schema)

    assert cluster["provider"]["type"] == "aws"
    types = cluster["available_node_types"]
    head = types[cluster["head_node_type"]]
    assert not head["node_config"]["InstanceType"].startswith(("p", "g"))  # a CPU head
    gpu = {name: t for name, t in types.items() if name != cluster["head_node_type"]}
    # GPU workers scale from zero
    assert gpu and all(t["min_workers"] == 0 and t["max_workers"] > 0 for t in gpu.values())
    assert all(t["node_config"]["InstanceType"].startswith(("p", "g")) for t in gpu.values())
    assert any("[gpu]" in command for command in cluster["setup_commands"])


def test_the_paper_config_is_wired_to_the_cluster():
    config = load_config(ROOT / "configs" / "llama2-7b.yaml")
    assert config.train.storage_path.startswith("s3://")
    assert config.run.workdir.startswith("/efs/")  # the file system cluster.yaml mounts on every node
    assert config.serve.engine == "vllm" and config.train.use_gpu
