"""Token counts for the context budget, with a model's own tokenizer and chat template when there is one."""

from __future__ import annotations

from collections.abc import Callable

from ..models.loading import load_tokenizer


def token_counter(tokenizer: str | None) -> Callable[[list[dict]], int]:
    """``count(messages)``: prompt tokens of ``messages``; ~4 characters a token without a tokenizer."""
    if tokenizer is None:
        return lambda messages: sum(len(m["content"]) // 4 + 4 for m in messages) + 2
    tok = load_tokenizer(tokenizer)

    def count(messages: list[dict]) -> int:
        if not messages:
            return 0
        if tok.chat_template:
            text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return len(tok(text, add_special_tokens=False).input_ids)
        return sum(len(tok(m["content"], add_special_tokens=False).input_ids) + 4 for m in messages)

    return count
