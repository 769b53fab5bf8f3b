"""Per-conversation cleaning: HTML to markdown, whitespace, turn structure, length, blocklist.

Each function takes a record and the prepare config, and either returns the (new) record
or raises ``RecordError`` with a countable reason. Fixes that keep the record are counted
in ``meta["fixes"]``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from markdownify import markdownify

from ..config import PrepareConfig
from ..conversation import ASSISTANT, SYSTEM, USER, RecordError, message

_HTML_TAG = re.compile(
    r"</?(?:div|p|pre|code|span|br|ul|ol|li|h[1-6]|table|thead|tbody|tr|td|th|strong|em|b|i|a|blockquote|hr|img)\b[^>]*>",
    re.IGNORECASE,
)
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff\u00ad"))


def html_to_markdown(text: str) -> str:
    return markdownify(text, heading_style="ATX", code_language="", bullets="-").strip()


def normalize_whitespace(text: str) -> str:
    text = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean_text(record: dict, cfg: PrepareConfig, fixes: Counter) -> dict:
    messages = []
    for m in record["messages"]:
        content = m["content"]
        if m["role"] in cfg.html_to_markdown and _HTML_TAG.search(content):
            content = html_to_markdown(content)
            fixes["html_to_markdown"] += 1
        if cfg.normalize_whitespace:
            content = normalize_whitespace(content)
        messages.append(message(m["role"], content))
    return {**record, "messages": messages}


def fix_structure(record: dict, cfg: PrepareConfig, fixes: Counter) -> dict:
    """Keep one leading system prompt, drop empty messages, merge same-role runs, check alternation."""
    system = ""
    turns: list[dict] = []
    for i, m in enumerate(record["messages"]):
        if m["role"] == SYSTEM:
            if i != 0:
                raise RecordError("not_alternating", f"system message at turn {i}")
            system = m["content"]
            continue
        if not m["content"]:
            fixes["empty_message_dropped"] += 1
            continue
        if cfg.merge_consecutive and turns and turns[-1]["role"] == m["role"]:
            turns[-1] = message(m["role"], turns[-1]["content"] + "\n\n" + m["content"])
            fixes["merged_messages"] += 1
            continue
        turns.append(message(m["role"], m["content"]))
    if cfg.drop_leading_assistant:
        while turns and turns[0]["role"] == ASSISTANT:
            turns.pop(0)
            fixes["leading_assistant_dropped"] += 1
    if not turns:
        raise RecordError("empty", "no user or assistant content")
    for i, m in enumerate(turns):
        expected = USER if i % 2 == 0 else ASSISTANT
        if m["role"] != expected:
            raise RecordError("not_alternating", f"turn {i} is {m['role']}, expected {expected}")
    head = [message(SYSTEM, system)] if system else []
    return {**record, "messages": head + turns}


def check_length(record: dict, cfg: PrepareConfig) -> None:
    turns = [m for m in record["messages"] if m["role"] != SYSTEM]
    user_turns = sum(m["role"] == USER for m in turns)
    if user_turns < cfg.min_turns or not any(m["role"] == ASSISTANT for m in turns):
        raise RecordError("too_few_turns", f"{user_turns} user turns, need {cfg.min_turns} and an answer")
    chars = sum(len(m["content"]) for m in turns)
    if chars < cfg.min_chars:
        raise RecordError("too_short", f"{chars} characters, need {cfg.min_chars}")


def check_blocklist(record: dict, phrases: list[str]) -> None:
    if not phrases:
        return
    text = "\n".join(m["content"] for m in record["messages"]).lower()
    for phrase in phrases:
        if phrase.lower() in text:
            raise RecordError("blocklisted", repr(phrase))
