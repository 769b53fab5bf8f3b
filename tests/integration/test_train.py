"""`realm train` on Ray Train with 2 workers over gloo and real DeepSpeed (ZeRO-2 and ZeRO-3) on CPU."""

import shutil

import pytest
import torch
from ray.train import TrainingFailedError

from ray_apps.cli import main
from ray_apps.config import ConfigError, load_config
from ray_apps.conversation import END_OF_CONVERSATION, simulator_view
from ray_apps.layout import RolloutData
from ray_apps.models import ModelNotFoundError, load_model, load_tokenizer
from ray_apps.models.chat_format import end_marker_id
from ray_apps.records import read_records
from ray_apps.rollout import run_rollout
from ray_apps.train import TrainError, run_train
from ray_apps.train.views import training_messages

from ..fake_endpoint import FakeEndpoint, rollout_overrides
from ..helpers import REQUEST, ROOT, prepared_records, train_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rollout_output(ray_session, tmp_path_factory):
    """What `realm rollout` writes: 16 sessions against the loopback fake endpoint (real Ray Data actors)."""
    workdir = tmp_path_factory.mktemp("rollout-output")
    fake = FakeEndpoint().start()
    try:
        run_rollout(
            load_config(
                ROOT / "configs/tiny.yaml",
                [f"run.workdir={workdir}", *rollout_overrides(fake.url), "rollout.num_sessions=16"],
            )
        )
    finally:
        fake.stop()
    return workdir / "realchat"


def _generate(model, tokenizer, messages, max_new_tokens=24, sample=False):
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            top_p=0.9 if sample else None,
            no_repeat_ngram_size=3,
        )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])


def test_the_tiny_default_usergpt_lowers_eval_loss_and_exports_a_loadable_model(usergpt, tiny_model_dir):
    assert usergpt["eval_loss_last"] < usergpt["eval_loss_first"] - 1.0
    # real tokens over the room of the packed rows (rows x train.max_length): best-fit packing fills most of it
    assert 0.5 < usergpt["packing_efficiency"] < 1.0, usergpt
    assert usergpt["tokens_per_second"] > 0
    model, tokenizer = load_model(usergpt["output"]), load_tokenizer(usergpt["output"])
    assert tokenizer.chat_template and "{% generation %}" in tokenizer.chat_template
    # the export is the trained simulator: its greedy opening is a request that ends its turn; the base's is not
    opening, ended, _ = _generate(model, tokenizer, simulator_view([]), 40).partition(tokenizer.eos_token)
    assert ended and REQUEST.search(opening.strip()), opening
    untrained = _generate(load_model(str(tiny_model_dir)), tokenizer, simulator_view([]), 40)
    assert tokenizer.eos_token not in untrained, untrained


def test_usergpt_asks_like_a_user_and_learns_when_to_stop(usergpt, prepared_sample, tiny_model_dir):
    model, tokenizer = load_model(usergpt["output"]), load_tokenizer(usergpt["output"])
    untrained = load_model(str(tiny_model_dir))
    torch.manual_seed(0)
    # Free mode: the first question is a completion of the simulator's system prompt alone.
    openings = [
        _generate(model, tokenizer, simulator_view([]), 40, sample=True).split(tokenizer.eos_token)[0] for _ in range(8)
    ]
    assert sum(bool(REQUEST.search(o.strip())) for o in openings) >= 6, openings

    turns, ends, untrained_ends, finished = [], 0, 0, 0
    for record in prepared_records(prepared_sample, "eval"):
        view = simulator_view(record["messages"])  # held out: never trained on
        first_answer = next(i for i, m in enumerate(view) if m["role"] == "user")
        turns.append(
            _generate(model, tokenizer, view[: first_answer + 1], sample=True).split(tokenizer.eos_token)[0].strip()
        )
        if record["meta"]["ended_naturally"] and view[-1]["role"] == "user":
            finished += 1
            ends += _generate(model, tokenizer, view, 2).startswith(END_OF_CONVERSATION)
            untrained_ends += _generate(untrained, tokenizer, view, 2).startswith(END_OF_CONVERSATION)
    asked = [t for t in turns if t and not t.startswith(END_OF_CONVERSATION)]
    assert len(asked) >= 5 and sum(bool(REQUEST.search(t)) for t in asked) >= 0.6 * len(asked), asked
    assert finished >= 5 and ends > untrained_ends


def test_usergpt_on_zero3_recovers_from_a_worker_failure_at_the_checkpoint_step(
    prepared_sample, tiny_model_dir, tmp_path
):
    cfg = train_config(
        prepared_sample,
        tiny_model_dir,
        tmp_path,
        "train.zero_stage=3",
        "train.max_steps=6",
        "train.save_steps=3",
        "train.eval_steps=3",
        "train.fail_at_step=4",
        "train.max_failures=1",
    )
    metrics = run_train(cfg, "user")
    assert metrics["resumed_from_step"] == 3 and metrics["step"] == 6
    assert metrics["eval_loss_last"] < metrics["eval_loss_first"]
    model, tokenizer = load_model(metrics["output"]), load_tokenizer(metrics["output"])
    assert model.config.vocab_size == len(tokenizer)
    # the export holds the trained weights, not the base's
    base = dict(load_model(str(tiny_model_dir)).named_parameters())
    moved = [
        name for name, p in model.named_parameters() if p.shape != base[name].shape or not torch.equal(p, base[name])
    ]
    assert moved, "the exported weights are the base model's"


def test_usergpt_on_a_rollouts_output_resumes_when_resubmitted_and_lora_is_merged_on_export(
    rollout_output, tiny_model_dir, tmp_path, capsys
):
    """The simulator trained on simulated sessions, their end markers included (the tiny default's pipeline trains
    the other three pairs of role and data), on ZeRO-2 with LoRA: a failed run resubmitted resumes from its
    checkpoint, and the exported model has the adapters merged."""
    sessions, skipped = read_records(RolloutData(rollout_output).sessions)
    assert len(sessions) == 16 and not skipped
    ended = [r for r in sessions if r["meta"]["stop_reason"] == "end_marker"]  # the fake simulator ends every session
    assert ended and all(training_messages(r, "user")[-1]["content"] == END_OF_CONVERSATION for r in ended)
    common = [
        "train.zero_stage=2",
        "train.max_steps=4",
        "train.save_steps=2",
        "train.eval_steps=2",
        "train.lora.enabled=true",
        "train.lora.r=8",
        "train.learning_rate=5e-3",
    ]
    failing = train_config(
        rollout_output, tiny_model_dir, tmp_path, *common, "train.fail_at_step=3", "train.max_failures=0"
    )
    with pytest.raises(TrainingFailedError):
        run_train(failing, "user")
    again = train_config(rollout_output, tiny_model_dir, tmp_path, *common)  # same run name and storage path
    metrics = run_train(again, "user")
    assert metrics["resumed_from_step"] == 2 and metrics["step"] == 4 and metrics["train_loss"] > 0, metrics
    exported = load_model(metrics["output"])
    assert exported.config.vocab_size == len(load_tokenizer(metrics["output"]))
    assert not any("lora" in name for name, _ in exported.named_parameters())
    base = load_model(str(tiny_model_dir))
    changed = [
        n for (n, p), (_, q) in zip(exported.named_parameters(), base.named_parameters()) if not torch.equal(p, q)
    ]
    # the adapters' layers, and of the embeddings the end marker's row alone (peft's trainable tokens)
    assert changed and all(
        any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj", "embed_tokens")) for n in changed
    )
    rows = (exported.get_input_embeddings().weight != base.get_input_embeddings().weight).any(dim=1)
    assert rows.nonzero().flatten().tolist() == [end_marker_id(load_tokenizer(metrics["output"]))]
    shutil.rmtree(metrics["output"])
    capsys.readouterr()
    assert run_train(again, "user")["step"] == 4  # a finished run is not trained again: no workers start
    assert "finished before: exported its final model, trained nothing" in capsys.readouterr().out
    assert load_model(metrics["output"]).config.vocab_size == exported.config.vocab_size  # its model exported again


def test_bad_input_fails_at_start_naming_the_problem(prepared_sample, tiny_model_dir, tmp_path, ray_session, capsys):
    empty = tmp_path / "empty"
    (empty / "parquet" / "train").mkdir(parents=True)
    with pytest.raises(TrainError, match="empty dataset"):
        run_train(train_config(empty, tiny_model_dir, tmp_path), "user")
    code = main(
        [
            "train",
            "--config",
            str(ROOT / "configs/tiny.yaml"),
            "--role",
            "user",
            f"train.data={empty}",
            f"train.base_model={tiny_model_dir}",
            f"run.workdir={tmp_path}",
        ]
    )
    assert code == 2 and "empty dataset" in capsys.readouterr().err
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        run_train(train_config(prepared_sample, tmp_path / "no-model", tmp_path), "user")
    with pytest.raises(TrainError, match="train.max_length=4096 is larger than the model's 1024 positions"):
        run_train(train_config(prepared_sample, tiny_model_dir, tmp_path, "train.max_length=4096"), "user")
    with pytest.raises(ConfigError, match="train: .*effective_batch_size=6 is not a multiple"):
        train_config(prepared_sample, tiny_model_dir, tmp_path, "train.effective_batch_size=6")
    with pytest.raises(TrainError, match=r"train.eval_data: no eval split in .*empty/parquet/eval"):
        run_train(train_config(prepared_sample, tiny_model_dir, tmp_path, f"train.eval_data={empty}"), "user")
    with pytest.raises(ConfigError, match="train.zero_stage"):
        train_config(prepared_sample, tiny_model_dir, tmp_path, "train.zero_stage=1")
