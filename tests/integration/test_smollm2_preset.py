"""The real-model preset (configs/smollm2.yaml) shortened: `realm pipeline` on SmolLM2-135M-Instruct with a few
dozen conversations, one training step per model and four sessions per simulator, served by the hf engine (the
preset's vLLM serving of this model is tested in test_real_model.py). Both simulators roll out against the model as
it is, eval scores both, and the report sets them side by side. The full preset is a command and a benchmark
(bench/RESULTS.md), not a test."""

import json
import re

import pytest

from ray_apps.config import load_config
from ray_apps.conversation import USER, RecordError, parse_sharegpt
from ray_apps.data.language import detect_language
from ray_apps.pipeline import run_pipeline
from ray_apps.records import read_records

from ..helpers import ROOT, SAMPLE, free_port

pytestmark = pytest.mark.integration

SHORTENED = [
    "train.max_steps=1",
    "train.eval_steps=100",
    "train.effective_batch_size=2",
    "train.max_length=256",
    "prepare.segment.max_tokens=224",
    "serve.engine=hf",
    "rollout.num_sessions=4",
    "rollout.max_turns=3",
    "rollout.context_tokens=512",
    "rollout.user.max_tokens=24",
    "rollout.compare_with.user.max_tokens=24",
    "rollout.assistant.max_tokens=32",
    "rollout.actors=1",
    "rollout.sessions_per_actor=4",
    "eval.answer.max_tokens=16",
]


@pytest.fixture(scope="module")
def preset_run(ray_session, smollm2_dir, smollm2_workdir, tmp_path_factory, pipeline_run):
    """The shortened preset's working directory once it ran. After the session's tiny job (``pipeline_run``), as the
    other real-model tests: beside it, 135M trainings starve it."""
    corpus, kept = tmp_path_factory.mktemp("smollm2-corpus") / "short.jsonl", []
    for line in (SAMPLE / "sharegpt_sample.jsonl").read_text(errors="replace").splitlines():
        try:
            record = parse_sharegpt(line)
        except RecordError:
            continue
        text = " ".join(m["content"] for m in record["messages"])
        if (
            record["messages"][:1]
            and record["messages"][0]["role"] == USER
            and len(text) < 700
            and detect_language(text)[0] == "en"
        ):
            kept.append(line)
    corpus.write_text("\n".join(kept[:48]) + "\n")
    workdir = tmp_path_factory.mktemp("smollm2-preset")
    (workdir / "models").mkdir()
    (workdir / "models" / "gguf").symlink_to(smollm2_workdir / "models" / "gguf")  # converted once per session
    config = load_config(
        ROOT / "configs" / "smollm2.yaml",
        # a port of its own: the session's tiny job left its cluster's Serve proxy on the preset's 8000
        [f"run.workdir={workdir}", f"prepare.inputs=[{corpus}]", f"serve.port={free_port()}", *SHORTENED],
    )
    report = run_pipeline(config)
    return {"workdir": workdir, "report": report}


def test_both_simulators_roll_out_and_the_prompted_sessions_say_so(preset_run):
    root = preset_run["workdir"]
    stages = json.loads((root / "manifest.json").read_text())["stages"]
    assert all(s["status"] == "complete" for s in stages.values()) and "rollout-prompted" in stages
    for directory, simulator, user_model in (
        ("realchat", "trained", "usergpt"),
        ("realchat-prompted", "prompted", "base"),
    ):
        sessions, _ = read_records(root / directory / "data")
        failures = (root / directory / "failures.jsonl").read_text().splitlines()
        assert len(sessions) + len(failures) == 4 and sessions, directory
        assert {(s["meta"]["simulator"], s["meta"]["user_model"]) for s in sessions} == {(simulator, user_model)}
        assert {s["meta"]["assistant_model"] for s in sessions} == {"base"}  # the same assistant, as it is


def test_eval_measures_both_simulators_figure_by_figure(preset_run):
    result = json.loads((preset_run["workdir"] / "eval" / "simulator.json").read_text())
    prompted = result["prompted"]
    # the prompted one is model.base as it is, scored with its persona and the end marker as the text it writes
    assert prompted["model"] == "base" and prompted["score"]["tokens"] > 0
    assert prompted["score"]["perplexity"] > 0 and prompted["termination_f1_sampled"] is not None
    decisions = prompted["score"]["termination"]["likelier"]["decisions"]
    assert decisions == result["simulator"]["termination"]["likelier"]["decisions"] > 0  # the same turns decided
    assert set(prompted["targets"]) == set(result["targets"])
    rows = {row["figure"]: row for row in result["comparison"]}
    for figure in ("user_utterance_length", "user_turns", "question_share", "end_marker_share", "termination_f1"):
        assert rows[figure]["trained"] is not None and rows[figure]["prompted"] is not None, figure
    for figure in ("perplexity", "role_flip_rate", "repeated_turn_rate", "opening_distinct_2"):
        assert rows[figure]["trained"] is not None and rows[figure]["prompted"] is not None, figure
        assert rows[figure]["closer"] in ("trained", "prompted", "tie"), figure
    assert rows["user_utterance_length"]["real"] > 0 and rows["perplexity"]["real"] is None
    assert rows["perplexity"]["prompted"] == prompted["score"]["perplexity"]
    stats = json.loads((preset_run["workdir"] / "eval" / "stats" / "stats.json").read_text())
    assert set(stats["stats"]) == {"real", "simulated", "prompted"}


def test_the_report_sets_the_simulators_side_by_side(preset_run):
    report = (preset_run["workdir"] / "report" / "report.md").read_text()
    assert "## Trained vs prompted simulator" in report and "## Sessions side by side" in report
    assert "## Rollout (prompted simulator)" in report
    assert re.search(r"Shown by this run: of \d+ figures measured for both, the trained simulator is closer", report)
    side_by_side = report.split("## Sessions side by side")[1]
    assert "| session | real (held out) | trained | prompted |" in side_by_side
