"""What the SFT trainer learns from: masks and packing, through TRL on real prepared samples."""

import datasets
import pytest
import torch

from ray_apps.config import load_config
from ray_apps.models import load_model, load_tokenizer
from ray_apps.train.sft import build_trainer
from ray_apps.train.views import training_messages

from ..helpers import ROOT, prepared_records

pytestmark = pytest.mark.integration


def _trainer(tiny_model_dir, rows, tmp_path, **overrides):
    cfg = load_config(ROOT / "configs/tiny.yaml", [f"train.{k}={v}" for k, v in overrides.items()]).train
    tokenizer = load_tokenizer(str(tiny_model_dir))
    data = datasets.Dataset.from_list([{"messages": m} for m in rows])
    trainer, _ = build_trainer(cfg, str(tiny_model_dir), tokenizer, data, None, str(tmp_path), use_deepspeed=False)
    return trainer, tokenizer


@pytest.mark.parametrize("role", ["user", "assistant"])
def test_unmasked_tokens_are_exactly_the_trainable_turns_and_their_end_tokens(
    prepared_sample, tiny_model_dir, tmp_path, role
):
    records = prepared_records(prepared_sample, "train")[:24]
    views = [training_messages(r, role) for r in records]
    trainer, tokenizer = _trainer(
        tiny_model_dir, views, tmp_path, packing="false", per_device_batch_size=1, effective_batch_size=16
    )
    loader = trainer.get_train_dataloader()
    seen = []
    for batch in loader:
        labels = batch["labels"][0]
        seen.append(tokenizer.decode(labels[labels != -100]))
    expected = ["".join(m["content"] + tokenizer.eos_token for m in view if m["role"] == "assistant") for view in views]
    assert sorted(seen) == sorted(expected)
    if role == "user":  # human turns carry the loss, and finished conversations end with the marker
        assert any(text.endswith("<|endconversation|>" + tokenizer.eos_token) for text in seen)
        assert all(r["messages"][0]["content"] in "".join(seen) for r in records if r["messages"][0]["role"] == "user")


def test_packed_loss_equals_token_weighted_mean_of_per_sequence_losses(prepared_sample, tiny_model_dir, tmp_path):
    views = [training_messages(r, "assistant") for r in prepared_records(prepared_sample, "train")[:12]]
    trainer, _ = _trainer(
        tiny_model_dir, views, tmp_path, packing="true", per_device_batch_size=4, effective_batch_size=8
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # padding-free: one flat row
    positions = batch["position_ids"][0]
    starts = (positions == 0).nonzero().flatten().tolist() + [positions.numel()]
    assert len(starts) > 2  # several sequences share the row
    model = load_model(str(tiny_model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        # use_cache=False as TRL's compute_loss passes it: the block mask is derived from position ids
        packed = model(**{k: batch[k] for k in ("input_ids", "position_ids", "labels")}, use_cache=False).loss.item()
        total, count = 0.0, 0
        for a, b in zip(starts, starts[1:]):
            ids, labels = batch["input_ids"][:, a:b], batch["labels"][:, a:b]
            n = int((labels[:, 1:] != -100).sum())
            if n:
                total += model(input_ids=ids, labels=labels).loss.item() * n
                count += n
    assert packed == pytest.approx(total / count, rel=1e-4)
