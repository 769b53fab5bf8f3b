import pytest
import torch

from ray_apps.conversation import END_OF_CONVERSATION, swap_roles
from ray_apps.models import ModelNotFoundError, load_model, load_tokenizer

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "How do I remove duplicates from a list?"},
    {"role": "assistant", "content": "Use `list(dict.fromkeys(items))` ✨."},
    {"role": "user", "content": "Thanks!"},
    {"role": "assistant", "content": "You're welcome."},
]


def test_tiny_model_is_a_plain_hugging_face_directory(offline_model_dir):
    names = {p.name for p in offline_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    model = load_model(str(offline_model_dir))
    tokenizer = load_tokenizer(str(offline_model_dir))
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer) <= 600
    ids = tokenizer.apply_chat_template(
        CONVERSATION, add_generation_prompt=False, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], len(tokenizer))


def test_special_tokens_are_single_tokens(offline_model_dir):
    tokenizer = load_tokenizer(str(offline_model_dir))
    for token in (END_OF_CONVERSATION, "<|im_start|>", "<|im_end|>", tokenizer.eos_token):
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    # The end marker is text the simulator writes: decoding that drops special tokens keeps it.
    ids = tokenizer("Thanks!" + END_OF_CONVERSATION + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Thanks!" + END_OF_CONVERSATION
    text = "naïve “quotes” 😊"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text  # byte-level: no <unk>


@pytest.mark.parametrize("view", ["assistant", "user"])
def test_generation_blocks_mask_exactly_the_trainable_turns(offline_model_dir, view):
    tokenizer = load_tokenizer(str(offline_model_dir))
    messages = CONVERSATION if view == "assistant" else swap_roles(CONVERSATION, end_marker=True)
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    trained = tokenizer.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
    expected = "".join(m["content"] + tokenizer.eos_token for m in messages if m["role"] == "assistant")
    assert trained == expected


def test_missing_local_model_fails_with_a_clear_message(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelNotFoundError, match="cannot load 'no-such-org/no-such-model'"):
        load_tokenizer("no-such-org/no-such-model")  # a hub id, offline in tests
