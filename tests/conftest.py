import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
sys.path.insert(0, str(SAMPLE))  # make_sample.generate, for corpora made in tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session; `ray.shutdown()` ends only the cluster it started."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture
def tiny_config():
    from ray_apps.config import load_config

    return load_config(ROOT / "configs" / "tiny.yaml")


@pytest.fixture(scope="session")
def prepared_sample(ray_session, tmp_path_factory):
    """The sample corpus through `realm prepare` (tiny config)."""
    from ray_apps.config import load_config
    from ray_apps.data import run_prepare

    out = tmp_path_factory.mktemp("prepared-sample")
    run_prepare(load_config(ROOT / "configs" / "tiny.yaml"), [str(SAMPLE)], str(out))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(prepared_sample, tmp_path_factory):
    """The tiny base model, its tokenizer trained on the prepared sample."""
    from ray_apps.config import load_config
    from ray_apps.models import run_init_model

    return run_init_model(load_config(ROOT / "configs" / "tiny.yaml"), prepared_sample, tmp_path_factory.mktemp("tiny-model"))


def prepared_records(directory, split: str) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted((directory / "parquet" / split).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]
