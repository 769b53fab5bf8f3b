"""The two training views of a prepared record: one SFT trainer serves both models."""

from __future__ import annotations

from typing import Literal

from ..conversation import SIMULATOR_SYSTEM_PROMPT, simulator_view

Role = Literal["user", "assistant"]


def training_messages(
    record: dict, role: Role, end_marker: bool = True, simulator_prompt: str = SIMULATOR_SYSTEM_PROMPT
) -> list[dict]:
    """Messages whose ``assistant`` turns are what the model learns to write.

    ``assistant`` (ReaLM, the baseline): the conversation as it is.
    ``user`` (UserGPT): the simulator's view (its own system prompt, roles swapped), so the
    human's turns carry the loss; a conversation that ended naturally (its last segment) gets
    the ``<|endconversation|>`` turn.
    """
    messages = [{"role": m["role"], "content": m["content"]} for m in record["messages"]]
    if role == "assistant":
        return messages
    ended = bool((record.get("meta") or {}).get("ended_naturally"))
    return simulator_view(messages, system_prompt=simulator_prompt, end_marker=end_marker and ended)
