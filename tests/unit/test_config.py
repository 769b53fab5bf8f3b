import pytest
import yaml

from ray_apps.config import ConfigError, PipelineConfig, load_config, write_run_config

from ..helpers import ROOT


def test_shipped_configs_load():
    tiny = load_config(ROOT / "configs" / "tiny.yaml")
    paper = load_config(ROOT / "configs" / "llama2-7b.yaml")
    assert tiny.model.base is None and tiny.train.use_gpu is False
    t = paper.train
    assert paper.model.base == "meta-llama/Llama-2-7b-hf"
    assert (t.max_length, t.learning_rate, t.num_epochs, t.effective_batch_size) == (2048, 2e-5, 3, 128)
    assert (t.lr_scheduler, t.warmup_ratio, t.zero_stage, t.bf16) == ("cosine", 0.03, 3, True)


def test_the_real_model_preset_compares_its_simulator_with_the_model_prompted_to_play_the_user():
    preset = load_config(ROOT / "configs" / "smollm2.yaml")
    assert preset.model.base.startswith("package://") and preset.serve.engine == "vllm"
    rollout = preset.rollout
    assert rollout.simulator == "trained" and rollout.assistant.model == "base"
    prompted = rollout.prompted()
    assert prompted.simulator == "prompted" and prompted.user.model == "base" and prompted.compare_with is None
    assert prompted.personas == rollout.compare_with.personas != rollout.personas
    # the same assistant, sessions and seeds: only who plays the user differs
    same = {"mode", "seeds", "num_sessions", "assistant", "max_turns", "context_tokens"}
    assert prompted.model_dump(include=same) == rollout.model_dump(include=same)
    assert prompted.session_fingerprint() != rollout.session_fingerprint()
    with pytest.raises(ValueError, match="compare_with is null"):
        load_config(ROOT / "configs" / "tiny.yaml").rollout.prompted()


def test_overrides_are_typed_and_nested():
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml",
        ["prepare.min_turns=3", "prepare.languages=[en, fr]", "prepare.dedup.near=false"],
    )
    assert cfg.prepare.min_turns == 3 and cfg.prepare.languages == ["en", "fr"] and cfg.prepare.dedup.near is False


@pytest.mark.parametrize(
    "override, key",
    [
        ("prepare.min_turn=2", "prepare.min_turn: unknown key"),
        ("prepare.dedup.threshold=1.5", "prepare.dedup.threshold"),
        ("train.zero_stage=1", "train.zero_stage"),
        ("prepare.num_workers=two", "prepare.num_workers"),
        ("prepare.role_map={narrator: bard}", "prepare.role_map"),
        ("nosuchsection.x=1", "nosuchsection: unknown key"),
    ],
)
def test_bad_keys_and_values_fail_naming_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert key in str(err.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["serve.engine=vllm", "serve.api_key_env=REALM_KEY"], "serve: .*api_key_env: the vllm engine"),
        (["rollout.min_turns=5", "rollout.max_turns=4"], "rollout: .*min_turns=5 > max_turns=4"),
        (
            ["rollout.context_tokens=600"],
            r"rollout: .*context_tokens=600 .* user.max_tokens \+ assistant.max_tokens = 640",
        ),
        (["model.init.num_attention_heads=3"], "model.init: .*hidden_size=128 must be a multiple of 2 x num_attention"),
        (["train.max_steps=0"], "train: .*max_steps: 0 trains nothing"),
        (
            ["rollout.context_tokens=600", "rollout.user.max_tokens=8", "rollout.compare_with.user.max_tokens=600"],
            r"rollout: .*compare_with.user.max_tokens \+ assistant.max_tokens = 1112",
        ),
    ],
)
def test_keys_that_cannot_work_together_fail_at_load_naming_them(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_unknown_key_in_yaml_names_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("prepare:\n  segment:\n    max_tokenz: 10\n")
    with pytest.raises(ConfigError, match=r"prepare\.segment\.max_tokenz: unknown key"):
        load_config(path)


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["prepare.min_turns"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_fingerprint_is_stable_and_tracks_changes():
    a, b = PipelineConfig(), PipelineConfig()
    assert a.fingerprint() == b.fingerprint()
    assert load_config(None, ["run.seed=1"]).fingerprint() != a.fingerprint()


def test_run_directory_gets_resolved_config_without_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    cfg = load_config(ROOT / "configs" / "llama2-7b.yaml")
    fingerprint = write_run_config(cfg, tmp_path)
    text = (tmp_path / "resolved_config.yaml").read_text()
    assert (tmp_path / "fingerprint").read_text().strip() == fingerprint
    assert "hf_secret_value_123" not in text
    assert load_config(tmp_path / "resolved_config.yaml").fingerprint() == fingerprint
    assert yaml.safe_load(text)["model"]["hf_token_env"] == "HF_TOKEN"
