import os
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, SAMPLE, train_config

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


@pytest.fixture(scope="session")
def offline_model_dir(tmp_path_factory):
    """A tiny model built without Ray (vocabulary 600, 256 positions) for unit tests."""
    import json

    from ray_apps.config import load_config
    from ray_apps.conversation import RecordError, parse_sharegpt
    from ray_apps.models import run_init_model

    corpus = tmp_path_factory.mktemp("corpus")
    with (corpus / "train.jsonl").open("w") as out:  # a record-format corpus from the sample's ShareGPT lines
        for line in (SAMPLE / "sharegpt_sample.jsonl").read_text(errors="replace").splitlines():
            try:
                out.write(json.dumps(parse_sharegpt(line)) + "\n")
            except RecordError:
                pass
    cfg = load_config(None, ["model.init.vocab_size=600", "model.init.max_position_embeddings=256"])
    return run_init_model(cfg, corpus, tmp_path_factory.mktemp("model"))


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

    return run_init_model(
        load_config(ROOT / "configs" / "tiny.yaml"), prepared_sample, tmp_path_factory.mktemp("tiny-model")
    )


@pytest.fixture(scope="session")
def usergpt(prepared_sample, tiny_model_dir, tmp_path_factory):
    """The tiny UserGPT: 8 epochs on the prepared sample, ZeRO-2 (trained once per test session)."""
    from ray_apps.train import run_train

    tmp = tmp_path_factory.mktemp("usergpt")
    cfg = train_config(
        prepared_sample,
        tiny_model_dir,
        tmp,
        "train.zero_stage=2",
        "train.num_epochs=8",
        "train.eval_steps=40",
        "train.save_steps=40",
    )
    return run_train(cfg, "user")


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """FastChat's MT-Bench / Vicuna-bench files and judge prompts, kept outside the project:
    $REALM_BENCHMARKS, or `shared/benchmarks` next to (or above) the checkout."""
    candidates = [Path(os.environ["REALM_BENCHMARKS"])] if os.environ.get("REALM_BENCHMARKS") else []
    candidates += [parent / "shared" / "benchmarks" for parent in ROOT.parents]
    for path in candidates:
        if (path / "judge_prompts.jsonl").is_file():
            return path
    pytest.fail(
        "FastChat benchmark files not found: set REALM_BENCHMARKS to a directory with judge_prompts.jsonl and mt_bench/"
    )
