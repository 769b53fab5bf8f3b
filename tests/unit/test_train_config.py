import pytest

from ray_apps.config import ConfigError, TrainConfig, load_config
from ray_apps.train.sft import accumulation_steps, deepspeed_config
from ray_apps.train.views import training_messages


def test_deepspeed_config_follows_the_zero_settings():
    ds = deepspeed_config(
        TrainConfig(zero_stage=3, offload_optimizer=True, offload_params=True, bf16=True, use_gpu=False)
    )
    zero = ds["zero_optimization"]
    assert (
        zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    )
    assert zero["stage3_gather_16bit_weights_on_model_save"] and ds["bf16"]["enabled"]
    assert "optimizer" not in ds  # the trainer builds a torch optimizer
    ds2 = deepspeed_config(TrainConfig(zero_stage=2, offload_params=True, bf16=False))
    assert ds2["zero_optimization"] == {"stage": 2} and not ds2["bf16"]["enabled"]


def test_accumulation_fills_the_effective_batch_or_names_the_keys():
    assert accumulation_steps(TrainConfig(effective_batch_size=128, per_device_batch_size=4), 8) == 4
    with pytest.raises(ConfigError, match=r"train: .*effective_batch_size=10 is not a multiple of .* = 8"):
        load_config(None, ["train.effective_batch_size=10", "train.per_device_batch_size=4", "train.num_workers=2"])
    with pytest.raises(ConfigError, match=r"models.usergpt.effective_batch_size=6 is not a multiple"):
        load_config(
            None,
            [
                "train.effective_batch_size=8",
                "train.per_device_batch_size=4",
                "train.num_workers=2",
                "train.models={usergpt: {effective_batch_size: 6}}",
            ],
        )


def test_training_views():
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
        "meta": {"ended_naturally": True},
    }
    assert training_messages(record, "assistant") == record["messages"]
    user = training_messages(record, "user", simulator_prompt="You are a user.")
    assert [m["role"] for m in user] == ["system", "assistant", "user", "assistant"]
    assert user[0]["content"] == "You are a user." and user[-1]["content"] == "<|endconversation|>"
    cut = {**record, "meta": {"ended_naturally": False}}
    assert training_messages(cut, "user")[-1]["content"] == "a"  # a cut segment gets no end marker
    assert training_messages(record, "user", end_marker=False)[-1]["content"] == "a"
