import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import ROOT, SAMPLE, ray_head, start_tiny_app

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
def head():
    """One `ray start --head` cluster of 2 CPUs for the session: jobs are submitted to it, drivers join it."""
    with ray_head(num_cpus=2) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pipeline_run(head, tmp_path_factory):
    """The embedded tiny default as a user submits it, `ray job submit --working-dir . -- python jobs/pipeline.py
    --config configs/tiny.yaml`, once for the session, stopped (`ray job stop`) when its rollout has written a few
    sessions and submitted again, which resumes it. Its prepared corpus, base model and trained UserGPT are what the
    other integration tests use, and the pipeline tests read its artefacts and both jobs' logs."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    workdir = tmp_path_factory.mktemp("job") / "run"
    ray = str(Path(sys.executable).parent / "ray")
    pipeline = ["--", "python", "jobs/pipeline.py", "--config", "configs/tiny.yaml", f"run.workdir={workdir}"]

    def job(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = [ray, "job", args[0], "--address", head["address"], *args[1:]]
        return subprocess.run(command, env=head["env"], capture_output=True, text=True, timeout=timeout)

    for _ in range(30):  # the head answers `ray job list` a little before its job agent takes submissions
        first = job("submit", "--submission-id", "tiny-stopped", "--no-wait", "--working-dir", str(ROOT), *pipeline)
        if "No available agent to submit job" not in first.stderr + first.stdout:
            break
        time.sleep(4)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    state, shards, deadline = workdir / "stages" / "rollout.json", workdir / "realchat" / "shards", time.time() + 1200
    # polled over HTTP: a `ray job status` process costs 1.8 s of CPU, and polling with it took a core from the job
    jobs = JobSubmissionClient(head["address"])
    while not (state.is_file() and sum(len(f.read_text().splitlines()) for f in shards.glob("*.jsonl")) >= 6):
        status = jobs.get_job_status("tiny-stopped")
        assert status in (JobStatus.PENDING, JobStatus.RUNNING), (status, jobs.get_job_logs("tiny-stopped")[-4000:])
        assert time.time() < deadline, "no rollout shard in time"
        time.sleep(0.5)
    stopped = job("stop", "tiny-stopped")  # its driver is killed mid-rollout
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert json.loads(state.read_text())["status"] == "running"
    resumed = job("submit", "--working-dir", str(ROOT), *pipeline, timeout=1500)
    assert resumed.returncode == 0 and "succeeded" in resumed.stdout, resumed.stdout[-4000:] + resumed.stderr[-2000:]
    return {"workdir": workdir, "log": resumed.stdout, "stopped_log": job("logs", "tiny-stopped").stdout}


@pytest.fixture(scope="session")
def prepared_sample(pipeline_run):
    """The sample corpus through the prepare stage (tiny config)."""
    return pipeline_run["workdir"] / "real"


@pytest.fixture(scope="session")
def tiny_model_dir(pipeline_run):
    """The tiny base model, its tokenizer trained on the prepared sample."""
    return pipeline_run["workdir"] / "models" / "base"


@pytest.fixture(scope="session")
def usergpt(pipeline_run):
    """The tiny UserGPT the tiny default trains (the train-usergpt stage's result, ``output`` its model)."""
    state = json.loads((pipeline_run["workdir"] / "stages" / "train-usergpt.json").read_text())
    return state["result"]


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


def pytest_collection_modifyitems(items):
    """Tests that need the session's tiny pipeline run or `ray start` cluster are `slow` (`make test-fast` leaves
    them to `make test`)."""
    for item in items:
        if {"pipeline_run", "head"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
