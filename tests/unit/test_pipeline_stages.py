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


AFTER_PREPARE = set(PIPELINE_STAGES) - {"prepare", "init-model"}


def test_another_base_model_or_chat_format_redoes_the_training_and_what_follows(tmp_path):
    # segments are measured in the base's tokens: another base cuts them anew, unless a tokenizer is given
    llama, qwen = _fingerprints("model.base=/models/llama"), _fingerprints("model.base=/models/qwen")
    assert list(llama) == [s for s in PIPELINE_STAGES if s != "init-model"]  # a given base needs no tiny model
    assert {name for name in llama if llama[name] != qwen[name]} == AFTER_PREPARE | {"prepare"}
    given = "prepare.segment.tokenizer=/models/tokenizer"
    llama, qwen = _fingerprints("model.base=/models/llama", given), _fingerprints("model.base=/models/qwen", given)
    assert {name for name in llama if llama[name] != qwen[name]} == AFTER_PREPARE
    vicuna = _fingerprints("model.base=/models/llama", "model.chat_template=vicuna", given)
    assert {name for name in llama if llama[name] != vicuna[name]} == AFTER_PREPARE
    # a GGUF file is known by its bytes: the same path with other weights trains again
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF one")
    before = _fingerprints(f"model.base={gguf}", given)
    gguf.write_bytes(b"GGUF two")
    after = _fingerprints(f"model.base={gguf}", given)
    assert {name for name in before if before[name] != after[name]} == AFTER_PREPARE


def test_the_simulators_prompt_redoes_the_prepared_segments():
    assert _redone("train.simulator_prompt='You are a curious student.'") == set(PIPELINE_STAGES)
