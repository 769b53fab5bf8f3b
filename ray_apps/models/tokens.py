"""Token counts: of plain text and of chat messages, with a model's own tokenizer (and chat template) when
there is one, else an approximation. Both counters are loaded once per process and tokenizer."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from .loading import load_tokenizer

_APPROX_TOKEN = re.compile(r"\w{1,4}|[^\w\s]")
_WORD = re.compile(r"\w+|[^\w\s]")


def approximate_token_count(text: str) -> int:
    """Rough count for when no tokenizer is given: short word pieces and punctuation."""
    return len(_APPROX_TOKEN.findall(text))


def word_count(text: str) -> int:
    """Words and punctuation marks."""
    return len(_WORD.findall(text))


@lru_cache(maxsize=8)
def text_token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """``count(text)``: content tokens (no special tokens) of ``tokenizer``, or the approximation."""
    if tokenizer is None:
        return approximate_token_count
    tok = load_tokenizer(tokenizer)
    return lambda text: len(tok(text, add_special_tokens=False).input_ids)


@lru_cache(maxsize=8)
def chat_token_counter(tokenizer: str | None) -> Callable[[list[dict]], int]:
    """``count(messages)``: prompt tokens of ``messages`` (chat template and generation prompt included);
    about 4 characters a token without a tokenizer."""
    if tokenizer is None:
        return lambda messages: sum(len(m["content"]) // 4 + 4 for m in messages) + 2
    tok = load_tokenizer(tokenizer)
    count = text_token_counter(tokenizer)

    def count_chat(messages: list[dict]) -> int:
        if not messages:
            return 0
        if tok.chat_template:
            return count(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
        return sum(count(m["content"]) + 4 for m in messages)

    return count_chat
