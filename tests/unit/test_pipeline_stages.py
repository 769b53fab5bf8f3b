"""What each pipeline stage's fingerprint covers: a changed key redoes the stages that read it and those after them;
every key of the schema is read by a stage or declared unread."""

from ray_apps.config import PipelineConfig, load_config
from ray_apps.layout import RunLayout
from ray_apps.pipeline.graph import UNREAD, fingerprints, stage_graph

from ..helpers import PIPELINE_STAGES, ROOT
from .test_config_reference import _leaf_keys


def _graph(*overrides: str):
    config = load_config(ROOT / "configs" / "tiny.yaml", ["run.workdir=/tmp/realm-fingerprints", *overrides])
    return stage_graph(config, RunLayout(config))


def _fingerprints(*overrides: str) -> dict[str, str]:
    return fingerprints(_graph(*overrides))


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


PROMPTED = "rollout.compare_with={user: {model: base}, personas: [You are a curious student.]}"


def test_every_key_is_read_by_a_stage_or_declared_unread():
    """A new config key must be given to the stages that read it (or to UNREAD): none is left out of the
    fingerprints by default, as model.base once was."""

    def covered(key: str, prefixes) -> bool:
        return any(key == p or key.startswith((f"{p}.", f"{p}[")) for p in prefixes)

    read = {
        key
        for overrides in ((), (PROMPTED,), ("model.base=/models/llama",))
        for s in _graph(*overrides)
        for key in s.reads
    }
    missing = [k for k in _leaf_keys(PipelineConfig, "") if not covered(k, read | set(UNREAD))]
    assert not missing, missing
    assert not [k for k in UNREAD if covered(k, read)]  # nothing is both


def test_a_stage_comes_after_the_stages_that_write_what_it_reads():
    after = {s.name: set(s.after) for s in _graph(PROMPTED)}
    assert after["train-usergpt"] == {"prepare", "init-model"}
    assert after["rollout"] == {"train-usergpt", "train-baseline"}
    assert after["rollout-prompted"] == {"init-model", "train-baseline"}  # the tiny base, talking to the baseline
    assert after["eval-simulator"] == {"prepare", "init-model", "train-usergpt", "rollout", "rollout-prompted"}
    assert after["train-realm"] == {"prepare", "init-model", "rollout"}
    assert after["eval-assistants"] == {"train-baseline", "train-realm"}
    # a simulator hosted elsewhere is not trained here for the rollout: it does not wait for train-usergpt
    hosted = {s.name: set(s.after) for s in _graph("rollout.user.base_url=http://127.0.0.1:9/v1")}
    assert hosted["rollout"] == {"train-baseline"}


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
