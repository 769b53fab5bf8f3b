"""What each pipeline stage's fingerprint covers: a changed key redoes the stages that read it and those after them."""

from ray_apps.config import PipelineConfig, load_config
from ray_apps.layout import RunLayout
from ray_apps.pipeline import SIMULATOR_EVAL_KEYS, _fingerprint, _stages

from ..helpers import PIPELINE_STAGES, ROOT


def _fingerprints(*overrides: str) -> dict[str, str]:
    config = load_config(ROOT / "configs" / "tiny.yaml", ["run.workdir=/tmp/realm-fingerprints", *overrides])
    fingerprints: dict[str, str] = {}
    for stage in _stages(config, RunLayout(config)):
        fingerprints[stage.name] = _fingerprint(config, stage, fingerprints)
    return fingerprints


def _redone(*overrides: str) -> set[str]:
    before, after = _fingerprints(), _fingerprints(*overrides)
    assert list(before) == list(after)
    return {name for name in before if before[name] != after[name]}


def test_the_stages_run_in_order():
    assert list(_fingerprints()) == PIPELINE_STAGES


def test_an_answer_or_judge_change_redoes_only_the_assistants_eval():
    assert _redone("eval.answer.max_tokens=24") == {"eval-assistants"}
    assert _redone("eval.judge_mode=pairwise-baseline", "eval.parse_retries=0") == {"eval-assistants"}


def test_a_simulator_eval_change_redoes_only_the_simulator_eval():
    assert _redone("eval.stats_sample=50") == {"eval-simulator"}
    assert _redone("eval.human_label=person") == {"eval-simulator"}
    assert _redone("eval.output=/tmp/elsewhere") == {"eval-simulator", "eval-assistants"}  # both write there


def test_the_simulator_eval_keys_name_eval_keys():
    keys = set(PipelineConfig.model_fields["eval"].annotation.model_fields)
    assert SIMULATOR_EVAL_KEYS < keys  # no stale name: each one exists


def test_a_rollout_or_training_change_redoes_what_comes_after():
    assert _redone("rollout.max_turns=6") == {"rollout", "eval-simulator", "train-realm", "eval-assistants"}
    assert _redone("train.learning_rate=0.001") == {
        "train-usergpt",
        "train-baseline",
        "rollout",
        "eval-simulator",
        "train-realm",
        "eval-assistants",
    }
