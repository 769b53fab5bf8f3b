"""`realm pipeline` end to end on the tiny default: submitted with `ray job submit` to a cluster started
with `ray start --head` on loopback, stopped during its rollout and submitted again (the session's
`pipeline_run`): every seed exactly once, a readable console, its simulator meeting the fidelity
targets; then rerun with changed answer settings on vLLM (only the assistants' eval runs), then rerun (nothing runs)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ray_apps.eval.figures import FIGURES

from ..helpers import PIPELINE_STAGES, ROOT

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _pipeline(head, workdir, *overrides):
    """`realm pipeline` (the tiny default with ``overrides``) as a driver connected to the `ray start` cluster,
    output captured."""
    command = [str(BIN / "realm"), "pipeline", "--config", "configs/tiny.yaml", f"run.workdir={workdir}", *overrides]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=head["env"] | {"RAY_ADDRESS": head["gcs"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_the_submitted_job_writes_every_artefact(pipeline_run):
    submitted = pipeline_run
    root = submitted["workdir"]
    states = {s: json.loads((root / "stages" / f"{s}.json").read_text()) for s in PIPELINE_STAGES}
    assert all(state["status"] == "complete" for state in states.values())
    for model in ("baseline", "realm"):  # both measured on the real eval split
        assert states[f"train-{model}"]["result"]["eval_loss_last"] > 0
    for name in ("usergpt", "baseline", "realm"):
        assert (root / "models" / name / "config.json").is_file()
    sessions = (root / "realchat" / "data" / "sessions.jsonl").read_text().splitlines()
    failures = (root / "realchat" / "failures.jsonl").read_text().splitlines()
    assert len(sessions) + len(failures) == 200 and sessions
    for model in ("baseline", "realm"):
        answers = [
            json.loads(line)
            for line in (root / "eval" / "demo" / "model_answer" / f"{model}.jsonl").read_text().splitlines()
        ]
        assert len(answers) == 10 and all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    stats = json.loads((root / "eval" / "stats" / "stats.json").read_text())
    assert set(stats["stats"]) == {"real", "simulated"} and stats["stats"]["simulated"]["sessions"] == len(sessions)
    assert "eval judge: skipped, no judge endpoint configured" in submitted["log"]

    manifest = json.loads((root / "manifest.json").read_text())
    assert set(manifest["stages"]) == set(PIPELINE_STAGES)
    assert manifest["packages"]["ray"] and manifest["config_fingerprint"]
    assert all(manifest["stages"][s]["seconds"] > 0 and manifest["stages"][s]["artefacts"] for s in PIPELINE_STAGES)
    report = (root / "report" / "report.md").read_text()
    assert (
        "## Real vs simulated data" in report
        and "## Benchmark answers" in report
        and "Skipped: no judge endpoint" in report
    )
    assert f"report: {root / 'report' / 'report.html'}" in submitted["log"]
    assert (root / "report" / "report.html").is_file()


def test_the_console_shows_stages_and_results_and_the_logs_keep_everything(pipeline_run):
    # what `ray job submit` and `ray job logs` printed of the two jobs, which together ran every stage once
    consoles = pipeline_run["stopped_log"] + pipeline_run["log"]
    assert len(consoles.splitlines()) < 300, len(consoles.splitlines())
    assert all(f"{stage}: finished in" in consoles for stage in PIPELINE_STAGES)
    assert "(ServeReplica" not in consoles and "POST /v1/chat/completions" not in consoles  # no access log
    assert "logging_progress" not in consoles and "LOAD_FAST" not in consoles and "Ray only requests" not in consoles
    # `ray job stop` is a stop, not a crash: no stack dump from Ray's crash handler, the resuming command instead
    assert "realm: stopped (SIGTERM)" in pipeline_run["stopped_log"] and "SIGTERM received" not in consoles
    logs = pipeline_run["workdir"] / "logs"
    assert {f"{stage}.log" for stage in PIPELINE_STAGES} | {"pipeline.log"} <= {p.name for p in logs.iterdir()}
    everything = (logs / "pipeline.log").read_text()
    assert "(RayTrainWorker" in everything and "[pipeline] 9/9 report" in everything
    assert "[train user] step" in (logs / "train-usergpt.log").read_text()
    assert "[rollout] 200 seeds" in (logs / "rollout.log").read_text()


def test_stopped_during_rollout_then_resubmitted_keeps_every_seed_once(pipeline_run):
    root, out = pipeline_run["workdir"], pipeline_run["log"]
    assert "rollout: resuming" in out and "train-usergpt: done before, skipped" in out
    records = [
        json.loads(line)
        for f in ("data/sessions.jsonl", "failures.jsonl")
        for line in (root / "realchat" / f).read_text().splitlines()
    ]
    assert len(records) == 200 == len({r["id"] for r in records})  # every seed exactly once
    before = re.search(r"\[rollout\] 200 seeds: (\d+) finished before", out)
    assert before and int(before.group(1)) >= 6, out[-3000:]  # the stopped run's sessions were kept, not redone


def test_the_tiny_default_simulator_meets_its_fidelity_targets(pipeline_run):
    """The method works on the embedded default: the simulator talks like the corpus's people."""
    submitted = pipeline_run
    root = submitted["workdir"]
    fidelity = json.loads((root / "eval" / "simulator.json").read_text())
    missed = {k: t for k, t in fidelity["targets"].items() if not t["met"]}
    assert not missed, missed
    assert list(fidelity["targets"]) == [f.key for f in FIGURES if f.has_target]
    for figure in FIGURES:  # every figure is measured, but the detector's (eval.human_detector is off)
        assert (fidelity[figure.key] is None) == (figure.name == "human_like_ratio"), figure.key
    # the rates count the turns the rollout's filters resampled: the figures are the simulator's, not the filters'
    summary = json.loads((root / "realchat" / "summary.json").read_text())
    assert fidelity["sessions"]["resampled_user_turns"] == summary["rejected_user_turns"]
    assert summary["stop_reasons"].get("max_turns", 0) < summary["stop_reasons"]["end_marker"]
    for key in fidelity["targets"]:
        assert f"[eval simulator] target {key} = " in submitted["log"]
    report = (root / "report" / "report.md").read_text()
    assert "## User simulator fidelity" in report and "Every target is met." in report
    assert [f.label for f in FIGURES if fidelity[f.key] is not None and f.label not in report] == []
    assert "## ReaLM vs baseline" in report and "On the real eval split" in report


def test_a_rerun_redoes_only_what_changed_here_eval_served_by_vllm(head, pipeline_run):
    """The finished run again with another eval answer length and vLLM's CPU build serving: only the assistants' eval
    runs, its answers served by vLLM (the rollout through vLLM is test_vllm's); then nothing runs."""
    root = pipeline_run["workdir"]
    changed = ["eval.answer.max_tokens=24", "serve.engine=vllm", "serve.engine_kwargs={enforce_eager: true}"]
    rerun = _pipeline(head, root, *changed)
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out[-4000:]
    redone = "eval-assistants"  # the simulator's figures do not read the answer settings: not measured again
    assert all(f"{stage}: done before, skipped" in out for stage in PIPELINE_STAGES if stage != redone), out[-3000:]
    assert f"{redone}: its config or inputs changed" in out and "[pipeline] serving baseline, realm at" in out
    assert "(engine vllm)" in out
    for model in ("baseline", "realm"):
        answers = (root / "eval" / "demo" / "model_answer" / f"{model}.jsonl").read_text().splitlines()
        assert len(answers) == 10
    assert json.loads((root / "stages" / f"{redone}.json").read_text())["status"] == "complete"
    report = (root / "report" / "report.md").read_text()  # the kept figures are reported with the new answers
    assert (root / "eval" / "simulator.json").is_file() and "Every target is met." in report

    again = _pipeline(head, root, *changed)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-4000:]
    assert all(f"{stage}: done before, skipped" in out for stage in PIPELINE_STAGES), out[-3000:]
