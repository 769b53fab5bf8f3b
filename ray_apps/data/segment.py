"""Split long conversations at turn boundaries, and assign the train/eval split."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ..config import SegmentConfig
from ..conversation import SIMULATOR_SYSTEM_PROMPT, SYSTEM, USER, RecordError, make_record, simulator_view


def segment(
    record: dict, cfg: SegmentConfig, count: Callable[[str], int], simulator_prompt: str = SIMULATOR_SYSTEM_PROMPT
) -> tuple[list[dict], int]:
    """Cut ``record`` into segments of at most ``cfg.max_tokens`` tokens in either training view: the conversation
    with its own system prompt, or the simulator's (``simulator_prompt`` and a final end-marker turn in place of it).

    Each segment starts with a user turn, repeats the system prompt, and holds whole exchanges
    (a user turn and its answer; a last unanswered user turn joins the exchange before it).
    ``meta.ended_naturally`` is true only on the last segment.
    An exchange that alone exceeds the budget cannot be cut at a turn boundary: it is dropped and
    counted (the second return value); the conversation continues in a new segment after it.
    Raises ``RecordError`` when nothing fits.
    """
    messages = record["messages"]
    system = [m for m in messages[:1] if m["role"] == SYSTEM]

    def cost(messages: list[dict]) -> int:
        return sum(count(m["content"]) + cfg.overhead_tokens for m in messages)

    # what the user view puts in place of the system prompt: the simulator's prompt and the end-marker turn
    user_view = simulator_view([], system_prompt=simulator_prompt, end_marker=True)
    budget = cfg.max_tokens - max(cost(system), cost(user_view))
    body = messages[len(system) :]
    exchanges = [body[i : i + 2] for i in range(0, len(body), 2)]  # starts with user, alternates

    chunks: list[list[dict]] = [[]]
    used, dropped = 0, 0
    for exchange in exchanges:
        size = cost(exchange)
        if size > budget:
            dropped += 1
            if chunks[-1]:
                chunks.append([])
            used = 0
            continue
        if used + size > budget and chunks[-1]:
            chunks.append([])
            used = 0
        chunks[-1].extend(exchange)
        used += size
    chunks = [c for c in chunks if c]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        # a last user turn nobody answered (a "thanks") stays with the exchange before it, over the budget if
        # need be: alone it would be a segment with nothing for an assistant to learn
        unanswered = chunks.pop()
        chunks[-1] += unanswered
    if not chunks:
        raise RecordError("exchange_over_max_tokens", f"every exchange exceeds {cfg.max_tokens} tokens")
    last_kept = chunks[-1][-1] is body[-1]
    out = []
    for i, chunk in enumerate(chunks):
        assert chunk[0]["role"] == USER
        rid = record["id"] if len(chunks) == 1 else f"{record['id']}#{i}"
        meta = {
            **record["meta"],
            "segment": i,
            "num_segments": len(chunks),
            "ended_naturally": last_kept and i == len(chunks) - 1,
        }
        out.append(make_record(rid, system + chunk, meta))
    return out, dropped


def split_of(conversation_id: str, eval_fraction: float, seed: int = 0) -> str:
    """Deterministic ``train``/``eval`` split by a hash of the conversation id (segments stay together)."""
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction else "train"
