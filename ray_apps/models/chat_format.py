"""A model's chat format, in one place: the training template (``{% generation %}`` marks what is learned), the
end marker as one added token, the pad token and the stop tokens.

``model.chat_template`` picks it once per base model: ``auto`` (the model's own template when it marks generation
already; else TRL's training template for the families TRL patches; else the built-in format the model's template
renders the same as; a model without a template gets Vicuna v1.1), a built-in name (``chatml``, ``vicuna``), or a
path to a Jinja file. ``apply_chat_format`` readies a tokenizer with it and ``fit_model`` readies the model (new
embedding rows, stop tokens), for training, serving and scoring alike. The exported tokenizer carries the template
it was trained with, so what is served and scored is what was trained: on an export, ``auto`` finds that template.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..conversation import END_OF_CONVERSATION

KEY = "model.chat_template"

#: ChatML (SmolLM2, Qwen and others): ``<|im_start|>role\n...<|im_end|>\n``, no default system prompt.
CHATML = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['content'] + '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

#: FastChat's ``vicuna_v1.1`` (the format PlatoLM trained LLaMA with): ``SYSTEM USER: q ASSISTANT: a</s>USER: ...``.
#: The space after ``ASSISTANT:`` is the answer's (inside the generation block): the prompt ends at the colon, so
#: the model learns to write it, also before the end marker.
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
VICUNA = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] + ' ' }}{%- set turns = messages[1:] -%}"
    "{%- else -%}"
    "{{ '" + VICUNA_SYSTEM.replace("'", "\\'") + " ' }}{%- set turns = messages -%}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ 'ASSISTANT:' }}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}"
    "{{ 'USER: ' + message['content'] + ' ' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)

BUILT_IN = {"chatml": CHATML, "vicuna": VICUNA}
#: Tokens a built-in template writes that a vocabulary may lack: added as special tokens (new embedding rows).
TEMPLATE_TOKENS = {"chatml": ("<|im_start|>", "<|im_end|>")}
CHOICES = f"auto, {', '.join(BUILT_IN)}, or a path to a Jinja file with {{% generation %}} marks"

# A conversation that every format must render the same way to count as the same format.
_PROBE = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
]


@dataclass(frozen=True)
class ChatFormat:
    name: str  # chatml, vicuna, "own" (the model's template), "trl" (TRL's training template) or a file's path
    template: str
    tokens: tuple[str, ...] = ()  # tokens the template needs in the vocabulary


def _render(tokenizer, template: str) -> str | None:
    try:
        return tokenizer.apply_chat_template(_PROBE, chat_template=template, tokenize=False)
    except Exception:  # a template that rejects the probe is not the same format
        return None


def _own_template(tokenizer) -> str | None:
    template = tokenizer.chat_template
    return template.get("default") if isinstance(template, dict) else template


def has_generation_marks(template: str | None) -> bool:
    from trl.chat_template_utils import has_generation_markers

    return bool(template) and has_generation_markers(template)


def _trl_template(tokenizer) -> str | None:
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except ValueError:  # not a family TRL patches
        return None


def chat_format(tokenizer, choice: str = "auto", model: str = "") -> ChatFormat:
    """The chat format ``choice`` (``model.chat_template``) names for ``tokenizer`` (of ``model``, for messages)."""
    if choice in BUILT_IN:
        return ChatFormat(choice, BUILT_IN[choice], TEMPLATE_TOKENS.get(choice, ()))
    if choice != "auto":
        path = Path(choice).expanduser()
        if not path.is_file():
            raise ConfigError(f"{KEY}: {choice!r} is neither a built-in format nor a file; choose {CHOICES}")
        template = path.read_text()
        if not has_generation_marks(template):
            raise ConfigError(f"{KEY}: {path} marks no {{% generation %}} block: nothing would be trained")
        return ChatFormat(str(path), template)
    own = _own_template(tokenizer)
    if own is None:
        return ChatFormat("vicuna", VICUNA)  # a base model without a template: the paper's format
    if has_generation_marks(own):
        return ChatFormat("own", own)
    patched = _trl_template(tokenizer)
    if patched:
        return ChatFormat("trl", patched)
    rendered = _render(tokenizer, own)
    for name, template in BUILT_IN.items():
        if rendered is not None and rendered == _render(tokenizer, template):
            return ChatFormat(name, template, TEMPLATE_TOKENS.get(name, ()))
    raise ConfigError(
        f"{KEY}: auto found no training template for {model or 'the model'}: its chat template marks no "
        f"{{% generation %}} block, TRL does not patch its family, and it renders unlike every built-in format; "
        f"choose {CHOICES}"
    )


def apply_chat_format(tokenizer, fmt: ChatFormat, end_marker: bool = True):
    """``tokenizer`` readied for ``fmt`` (changed in place, returned): its template, the tokens the template needs,
    the end marker as one token that decoding keeps (added, not special; not with ``end_marker=False``: a model that
    writes it as text), and a pad token (eos when it has none)."""
    from tokenizers import AddedToken

    tokenizer.chat_template = fmt.template
    missing = [t for t in fmt.tokens if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
    if end_marker and END_OF_CONVERSATION not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(END_OF_CONVERSATION, special=False, normalized=False)])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_marker_id(tokenizer) -> int:
    """The end marker's token id (``apply_chat_format`` added it)."""
    ids = tokenizer(END_OF_CONVERSATION, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ConfigError(f"{KEY}: {END_OF_CONVERSATION} is {len(ids)} tokens in this vocabulary, not one")
    return ids[0]


def end_of_turn_id(tokenizer) -> int:
    """The token that closes a trained (``assistant``) turn: the last token the template's generation block marks,
    read off a rendered probe. Generation stops at it."""
    probe = [*_PROBE[:2], {"role": "assistant", "content": "A1"}]
    out = tokenizer.apply_chat_template(probe, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    while marked and not tokenizer.decode(marked[-1:]).strip():  # whitespace after the closing token
        marked.pop()
    if len(marked) < 2 or tokenizer.decode(marked[:-1]).strip() != "A1":
        raise ConfigError(
            f"{KEY}: the template's {{% generation %}} block ends with the answer's text, not with a token that "
            "closes the turn (such as <|im_end|> or </s>): a trained model would never stop"
        )
    return marked[-1]


def stop_token_ids(tokenizer, model_eos: int | list[int] | None = None) -> list[int]:
    """What ends a generation: the model's own eos ids, the tokenizer's eos and the end of a trained turn."""
    ids = [model_eos] if isinstance(model_eos, int) else list(model_eos or [])
    for extra in (tokenizer.eos_token_id, end_of_turn_id(tokenizer)):
        if extra is not None and extra not in ids:
            ids.append(extra)
    return ids


def fit_model(model, tokenizer) -> None:
    """``model`` readied for ``tokenizer`` after ``apply_chat_format``: a row per added token (drawn around the mean
    of the existing rows, as transformers initialises them, from a fixed seed: every training worker and an export's
    LoRA merge draw the same rows), the pad token, and the end of a turn among the stop tokens.

    A new end marker starts as a copy of the token that closes a turn, the model's own way of stopping: a mean row
    is about the 16,000th likeliest token where real conversations end, and a short fine-tuning moves one row too
    little to change that (SmolLM2-135M, 32 steps at lr 1e-4: the row moved 1% of its norm, termination F1 0)."""
    import torch

    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        marker = tokenizer.convert_tokens_to_ids(END_OF_CONVERSATION)
        if isinstance(marker, int) and marker >= rows:
            closing = end_of_turn_id(tokenizer)
            with torch.no_grad():  # both the input and the output rows (one matrix when they are tied)
                for embeddings in (model.get_input_embeddings(), model.get_output_embeddings()):
                    if embeddings is not None:
                        embeddings.weight[marker] = embeddings.weight[closing]
    config = model.generation_config
    config.eos_token_id = stop_token_ids(tokenizer, config.eos_token_id)
    config.pad_token_id = model.config.pad_token_id = tokenizer.pad_token_id


def load_chat_tokenizer(path: str, choice: str = "auto", token_env: str = "HF_TOKEN", end_marker: bool = True):
    """The tokenizer of ``path`` readied with the chat format ``choice`` names for it (``apply_chat_format``)."""
    from .loading import load_tokenizer

    tokenizer = load_tokenizer(path, token_env)
    return apply_chat_format(tokenizer, chat_format(tokenizer, choice, path), end_marker)
