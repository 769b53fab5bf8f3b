"""The chat format checked in the driver, in seconds, before any worker loads a model: what a worker would
otherwise find minutes later, or never (a model trained on the wrong tokens).

On one prepared conversation, in both training views: the loss mask is not empty and covers exactly the trained
turns, each with the token that closes it; every generation prompt renders as a token prefix of the conversation
that continues it (what is served is what was trained). On the longest conversations: each fits ``train.max_length``
in the user view, where the end marker comes last.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..config import ConfigError, TrainConfig
from ..models.chat_format import KEY, end_of_turn_id
from ..records import record_from_row
from .views import Role, training_messages

LONGEST = 32  # conversations (by characters) whose tokens are counted


def _encode(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    return list(out["input_ids"]), list(out["assistant_masks"])


def _marked_runs(tokenizer, ids: list[int], mask: list[int]) -> list[str]:
    runs, current = [], []
    for token, marked in zip([*ids, None], [*mask, 0]):
        if marked:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs


def check_view(tokenizer, messages: list[dict], view: str) -> None:
    """The mask and the generation prompts of one conversation in one view; ``ConfigError`` names what is wrong."""
    ids, mask = _encode(tokenizer, messages)
    closing = tokenizer.decode([end_of_turn_id(tokenizer)])
    expected = [(m["content"] + closing).strip() for m in messages if m["role"] == "assistant"]
    marked = [run.strip() for run in _marked_runs(tokenizer, ids, mask)]
    if not marked:
        raise ConfigError(f"{KEY}: the {view} view marks no token to train on (no {{% generation %}} block applies)")
    if marked != expected:
        raise ConfigError(
            f"{KEY}: in the {view} view the loss covers {marked[:3]!r}..., not exactly the trained turns each closed "
            f"by {closing!r} ({expected[:3]!r}...)"
        )
    for k, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(
            messages[:k], add_generation_prompt=True, tokenize=True, return_dict=True
        )
        prompt_ids = list(prompt["input_ids"])
        continued = _encode(tokenizer, messages[: k + 1])[0]
        if continued[: len(prompt_ids)] != prompt_ids:
            raise ConfigError(
                f"{KEY}: in the {view} view the generation prompt of turn {k} is not a token prefix of the "
                f"conversation that continues it: {tokenizer.decode(prompt_ids[-8:])!r} vs "
                f"{tokenizer.decode(continued[len(prompt_ids) - 8 : len(prompt_ids) + 2])!r}"
            )


def _longest(tables: list[pa.Table], n: int) -> list[dict]:
    """The ``n`` rows of ``tables`` with the most characters of content."""
    rows = []
    for table in tables:
        messages = table["messages"].combine_chunks()
        chars = pc.utf8_length(pc.struct_field(pc.list_flatten(messages), "content"))
        per_row = (
            pa.table({"row": pc.list_parent_indices(messages), "chars": chars})
            .group_by("row")
            .aggregate([("chars", "sum")])
        )
        order = pc.sort_indices(per_row, sort_keys=[("chars_sum", "descending")])[:n]
        rows += table.take(pc.take(per_row["row"], order)).to_pylist()
    return rows


def check_training_data(tokenizer, tables: list[pa.Table], cfg: TrainConfig, role: Role) -> None:
    """Both views of one conversation, and the longest conversations' length in the view of ``role``: in the user
    view a conversation longer than ``train.max_length`` would lose its end, where the end marker is (an error);
    in the assistant view it loses the end of its last answer (said, not an error: a rollout's sessions are not
    segmented, and ``rollout.context_tokens`` may allow longer ones)."""
    longest = [record_from_row(row) for row in _longest(tables, LONGEST)]
    sample = next((r for r in longest if sum(m["role"] == "assistant" for m in r["messages"]) >= 1), None)
    if sample is None:
        return  # nothing to train on: the run's own check says so
    ended = {**sample, "meta": {**sample["meta"], "ended_naturally": True}}  # the user view with its end marker
    for view in ("assistant", "user"):
        check_view(tokenizer, training_messages(ended, view, cfg.end_marker, cfg.simulator_prompt), view)
    lengths = {
        record["id"]: len(_encode(tokenizer, training_messages(record, role, cfg.end_marker, cfg.simulator_prompt))[0])
        for record in longest
    }
    over = {rid: length for rid, length in lengths.items() if length > cfg.max_length}
    if over and role == "user":
        rid, length = max(over.items(), key=lambda item: item[1])
        raise ConfigError(
            f"train.max_length={cfg.max_length}: conversation {rid} is {length} tokens in the user view, and its "
            "end would be cut off; raise train.max_length, or prepare again with a smaller "
            "prepare.segment.max_tokens (and prepare.segment.tokenizer set to this model)"
        )
    if over:
        print(
            f"[train {role}] {len(over)} of the {len(lengths)} longest conversations are longer than "
            f"train.max_length={cfg.max_length} (up to {max(over.values())} tokens): their last turns are cut there",
            flush=True,
        )
