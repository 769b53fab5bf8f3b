"""The canonical conversation record, ShareGPT at the edges, and the role swap.

Inside the project every conversation is one record::

    {"id": str, "messages": [{"role": "system" | "user" | "assistant", "content": str}], "meta": {...}}

ShareGPT (``{"id", "conversations": [{"from", "value"}]}``) is read and written only here.
The role swap gives the user-simulator view of a conversation: human turns become the
``assistant`` role, so one ordinary chat model (and one SFT trainer) learns to ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

SYSTEM, USER, ASSISTANT = "system", "user", "assistant"
ROLES = (SYSTEM, USER, ASSISTANT)

#: The special token the user simulator emits to end a session.
END_OF_CONVERSATION = "<|endconversation|>"

#: ShareGPT speaker names and the role each maps to.
DEFAULT_ROLE_MAP: dict[str, str] = {
    "human": USER,
    "user": USER,
    "gpt": ASSISTANT,
    "chatgpt": ASSISTANT,
    "bing": ASSISTANT,
    "bard": ASSISTANT,
    "assistant": ASSISTANT,
    "system": SYSTEM,
}

#: The ShareGPT speaker name written for each role.
SHAREGPT_SPEAKER = {USER: "human", ASSISTANT: "gpt", SYSTEM: "system"}


class RecordError(ValueError):
    """A record that cannot become a conversation; ``reason`` is a short, countable code."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def make_record(id: str, messages: list[dict[str, str]], meta: Mapping[str, Any] | None = None) -> dict:
    return {"id": id, "messages": messages, "meta": dict(meta or {})}


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RecordError("value_not_string", f"{where} is {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError("invalid_utf8", f"{where}: {exc.reason} at {exc.start}") from None
    return value


def from_sharegpt(raw: Any, role_map: Mapping[str, str] = DEFAULT_ROLE_MAP) -> dict:
    """One ShareGPT object to a record, or ``RecordError`` naming what is wrong with it."""
    if not isinstance(raw, dict):
        raise RecordError("not_an_object", f"got {type(raw).__name__}")
    turns = raw.get("conversations", raw.get("conversation"))
    if turns is None:
        raise RecordError("missing_conversations", f"keys: {sorted(raw)[:8]}")
    if not isinstance(turns, list):
        raise RecordError("conversations_not_a_list", f"got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError("turn_not_an_object", f"turn {i} is {type(turn).__name__}")
        speaker = turn.get("from", turn.get("role"))
        if not isinstance(speaker, str):
            raise RecordError("missing_speaker", f"turn {i}")
        role = role_map.get(speaker.strip().lower())
        if role is None:
            raise RecordError("unknown_role", f"turn {i} from {speaker!r}")
        content = _check_text(turn.get("value", turn.get("content")), f"turn {i} value")
        messages.append(message(role, content))
    rid = raw.get("id")
    if rid is not None and not isinstance(rid, (str, int)):
        raise RecordError("bad_id", f"id is {type(rid).__name__}")
    meta = {k: v for k, v in raw.items() if k not in ("id", "conversations", "conversation")}
    return make_record("" if rid is None else _check_text(str(rid), "id"), messages, meta)


def to_sharegpt(record: Mapping[str, Any]) -> dict:
    """A record to a ShareGPT object (``meta`` is not part of ShareGPT and is left out)."""
    return {
        "id": record["id"],
        "conversations": [{"from": SHAREGPT_SPEAKER[m["role"]], "value": m["content"]} for m in record["messages"]],
    }


def split_sharegpt(text: str) -> Iterator[tuple[int, str, RecordError | None]]:
    """Split a ShareGPT file (a JSON array or JSONL) into ``(line_number, raw_text, error)``.

    Nothing stops the iteration: an array element that cannot be parsed, or a line that is not
    valid UTF-8 (decode files with ``errors="surrogateescape"``), comes with a ``RecordError``,
    and splitting goes on. JSONL lines are parsed later, by the caller (``parse_sharegpt``).
    """
    stripped = text.lstrip()
    if stripped.startswith("["):
        yield from _split_json_array(text, len(text) - len(stripped) + 1)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line, _utf8_error(line)


def _utf8_error(text: str) -> RecordError | None:
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return RecordError("invalid_utf8", f"undecodable byte at character {exc.start}")


def printable(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes) shown as ``\\xNN``, safe to write."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _split_json_array(text: str, pos: int) -> Iterator[tuple[int, str, RecordError | None]]:
    decoder = json.JSONDecoder()
    line, counted_to = 1, 0

    def line_at(offset: int) -> int:
        nonlocal line, counted_to
        line += text.count("\n", counted_to, offset)
        counted_to = offset
        return line

    n = len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            return
        start = pos
        try:
            _, pos = decoder.raw_decode(text, pos)
            yield line_at(start), text[start:pos], _utf8_error(text[start:pos])
        except json.JSONDecodeError as exc:
            # Resynchronise at the next line that opens an object.
            nxt = text.find("\n", max(exc.pos, start + 1))
            while nxt != -1 and not text[nxt + 1 :].lstrip(" \t").startswith("{"):
                nxt = text.find("\n", nxt + 1)
            pos = n if nxt == -1 else nxt + 1
            yield line_at(start), text[start:pos], RecordError("invalid_json", f"{exc.msg} (array element)")


def parse_sharegpt(raw_json: str, role_map: Mapping[str, str] = DEFAULT_ROLE_MAP) -> dict:
    """One ShareGPT JSON text to a record, or ``RecordError`` with the reason."""
    try:
        obj = json.loads(raw_json)
    except json.JSONDecodeError as exc:
        raise RecordError("invalid_json", exc.msg) from None
    return from_sharegpt(obj, role_map)


def write_sharegpt(records: Iterable[Mapping[str, Any]], path: str, *, jsonl: bool = True) -> int:
    """Write records as ShareGPT JSONL (or one JSON array); returns how many were written."""
    items = [to_sharegpt(r) for r in records]
    with open(path, "w", encoding="utf-8") as f:
        if jsonl:
            f.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        else:
            json.dump(items, f, ensure_ascii=False, indent=1)
    return len(items)


def opening(messages: list[Mapping[str, str]]) -> str | None:
    """A conversation's first user turn (None without one)."""
    return next((m["content"] for m in messages if m["role"] == USER), None)


def ends_conversation(text: str) -> bool:
    """A simulated user turn that ends the session: it opens with the end marker."""
    return text.strip().startswith(END_OF_CONVERSATION)


def is_end_marker(msg: Mapping[str, str]) -> bool:
    """An end-marker turn (of either view of a conversation)."""
    return msg["role"] != SYSTEM and ends_conversation(msg["content"])


def swap_roles(messages: list[Mapping[str, str]], *, end_marker: bool = False) -> list[dict[str, str]]:
    """The role swap: ``user`` <-> ``assistant``; the system prompt is kept.

    The user-simulator view of a conversation is ``swap_roles(messages)``: its ``assistant``
    turns are the human's, so a chat model trained with loss on ``assistant`` learns to ask.
    ``end_marker=True`` appends a final simulated-user turn holding ``<|endconversation|>``
    (for conversations that ended naturally). An end-marker turn already at the end of the
    input is removed, so swapping twice gives back the original conversation either way.
    """
    body = list(messages)
    if body and is_end_marker(body[-1]):
        body.pop()
    flip = {USER: ASSISTANT, ASSISTANT: USER, SYSTEM: SYSTEM}
    swapped = [message(flip[m["role"]], m["content"]) for m in body]
    if end_marker:
        # In the swapped view the simulated user speaks as the assistant role.
        swapped.append(message(ASSISTANT, END_OF_CONVERSATION))
    return swapped


#: The user simulator's default system prompt (its persona); the original one belongs to the assistant.
SIMULATOR_SYSTEM_PROMPT = (
    "You are a human user chatting with an AI assistant. Ask what you want to know, follow up on the "
    "answers the way people do, and end the conversation when you are done."
)


#: The persona of a *prompted* simulator (an instruct model told to play the user, as UltraChat and Baize made
#: their data), the baseline a trained simulator is compared with (``rollout.compare_with``).
PROMPTED_USER_PROMPT = (
    "You are a person chatting with an AI assistant; you are not the assistant. Write only your own next message "
    "to it, the way people type: usually a short question about something you want to know, or a follow-up on its "
    f"last answer. Never answer questions or offer help. When you have what you need, reply with {END_OF_CONVERSATION} "
    "and nothing else."
)


def simulator_view(
    messages: list[Mapping[str, str]], *, system_prompt: str = SIMULATOR_SYSTEM_PROMPT, end_marker: bool = False
) -> list[dict[str, str]]:
    """What the user simulator sees: its own system prompt, then the role-swapped turns.

    Its first question is a completion of ``[system]`` alone; every later user turn is a chat
    completion of this view of the conversation so far.
    """
    turns = [m for m in messages if m["role"] != SYSTEM]
    return [message(SYSTEM, system_prompt), *swap_roles(turns, end_marker=end_marker)]
