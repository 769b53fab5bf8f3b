import os
import sys
from pathlib import Path

import pytest

from .helpers import ROOT, SAMPLE, ray_head, smollm2_gguf, start_tiny_app
from .tiny_pipeline import TinyPipelineJob

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


@pytest.fixture(scope="session")
def smollm2_workdir(tmp_path_factory) -> Path:
    """A working directory where `model.base=<SmolLM2's GGUF file>` is dequantized already."""
    return tmp_path_factory.mktemp("smollm2")


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_workdir) -> Path:
    """SmolLM2-135M-Instruct, a real pretrained model, dequantized from the wheel's GGUF once for the session (where
    the working directory ``smollm2_workdir`` keeps it)."""
    from ray_apps.config import load_config
    from ray_apps.models.base import base_model

    return Path(base_model(load_config(None, [f"run.workdir={smollm2_workdir}", f"model.base={smollm2_gguf()}"])))


@pytest.fixture
def tiny_config():
    from ray_apps.config import load_config

    return load_config(ROOT / "configs" / "tiny.yaml")


# What the session's tiny pipeline run gives, in the order it is ready: its cluster at once, then what each of its
# first stages writes (a test that reads only the prepared corpus starts once prepare is complete), then the whole run.
RUN_FIXTURES = ["head", "prepared_sample", "tiny_model_dir", "usergpt", "pipeline_run"]


def waits_for(item) -> int:
    """0 for a test that reads nothing of the tiny run, else 1 + the index of the last of RUN_FIXTURES it reads."""
    read = [i for i, name in enumerate(RUN_FIXTURES) if name in getattr(item, "fixturenames", ())]
    return 1 + max(read) if read else 0


@pytest.fixture(scope="session", autouse=True)
def tiny_pipeline(request, tmp_path_factory):
    """The tiny default's pipeline job (tests/tiny_pipeline.py) on a `ray start --head` cluster of 2 CPUs, submitted
    as the session starts when a selected test reads it, so that it trains while the other tests run."""
    needs = max(map(waits_for, request.session.items), default=0)
    if not needs:
        yield None
        return
    with ray_head(num_cpus=2) as cluster:
        job = TinyPipelineJob(cluster, tmp_path_factory.mktemp("job") / "run")
        yield job.start() if needs > 1 else job  # only the cluster for tests that only join it


@pytest.fixture(scope="session")
def head(tiny_pipeline):
    """The session's `ray start --head` cluster: jobs are submitted to it, drivers join it."""
    return tiny_pipeline.head


@pytest.fixture(scope="session")
def pipeline_run(tiny_pipeline):
    """The finished tiny run: its working directory, the resumed job's console (``log``) and the stopped one's
    (``stopped_log``). Its pipeline tests read its artefacts and both jobs' logs."""
    return tiny_pipeline.result()


@pytest.fixture(scope="session")
def prepared_sample(tiny_pipeline):
    """The sample corpus through the prepare stage (tiny config)."""
    tiny_pipeline.stage("prepare")
    return tiny_pipeline.workdir / "real"


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipeline):
    """The tiny base model, its tokenizer trained on the prepared sample."""
    tiny_pipeline.stage("init-model")
    return tiny_pipeline.workdir / "models" / "base"


@pytest.fixture(scope="session")
def usergpt(tiny_pipeline):
    """The tiny UserGPT the tiny default trains (the train-usergpt stage's result, ``output`` its model)."""
    return tiny_pipeline.stage("train-usergpt")["result"]


@pytest.fixture(scope="session")
def _hf_app_slot() -> dict:
    return {}


@pytest.fixture
def hf_app(_hf_app_slot, ray_session, usergpt, tiny_model_dir, tmp_path_factory) -> dict:
    """The `hf` Serve app: the tiny UserGPT and the untrained tiny model (as `baseline`) behind one OpenAI API, one
    replica each. One for the session (test_rollout and test_serve talk to it); deployed again when a
    module with its own app (test_serve_routing, test_vllm) has shut Serve down since."""
    from ray import serve

    if not _hf_app_slot or "realm" not in serve.status().applications:
        _hf_app_slot.update(start_tiny_app(usergpt, tiny_model_dir, tmp_path_factory.mktemp("serve")))
    return _hf_app_slot


@pytest.fixture(scope="session")
def benchmarks_dir() -> Path:
    """MT-Bench questions, reference answers and judge prompts in FastChat's formats: $REALM_BENCHMARKS (FastChat's
    own files: `.ci/run` sets it where they are), else the project's fixtures (`tests/fixtures/benchmarks`)."""
    path = Path(os.environ.get("REALM_BENCHMARKS") or ROOT / "tests" / "fixtures" / "benchmarks")
    if not (path / "judge_prompts.jsonl").is_file():
        pytest.fail(f"REALM_BENCHMARKS={path}: no judge_prompts.jsonl there (FastChat's llm_judge data directory)")
    return path


def pytest_collection_modifyitems(items):
    """Tests that read the session's tiny pipeline run are `slow` (`make test-fast` leaves them to `make test`), and
    run after the others, in the order what they read is ready: the run trains while the others run."""
    for item in items:
        if waits_for(item):
            item.add_marker(pytest.mark.slow)
    items.sort(key=waits_for)  # stable: within a group, the files' order
