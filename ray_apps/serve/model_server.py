"""One model as a Ray Serve deployment: every caller's request joins one continuously batched decode.

Requests wait in a queue; a single decode loop admits them between steps (up to
``max_batch_size`` sequences), runs the steps in a worker thread so the replica keeps accepting
requests, and hands each caller its text as it becomes final.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator
from dataclasses import replace

import torch
from ray import serve
from ray.util import metrics

from .engine import DecodeBatch, Delta, GenerationRequest, HFEngine

logger = logging.getLogger("ray.serve")
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


class _Choice:
    """The decode loop's key of one choice: what it puts here goes to the caller's queue, tagged with the index."""

    def __init__(self, index: int, out: asyncio.Queue):
        self.index, self.out = index, out

    def put_nowait(self, delta) -> None:
        self.out.put_nowait((self.index, delta))


@serve.deployment
class ModelServer:
    """Streams :class:`Delta` objects for a request's :class:`GenerationRequest` choices (call with
    ``handle.options(stream=True)``)."""

    def __init__(
        self,
        name: str,
        path: str,
        *,
        dtype: str,
        max_batch_size: int,
        batch_wait_timeout_s: float,
        token_env: str,
        chunk_interval_s: float,
        num_cpus: float,
        prefix_cache_mb: float,
    ):
        self.name = name
        self.replica = serve.get_replica_context().replica_id.unique_id
        # Ray gives a fractional replica one thread; use what it reserved
        torch.set_num_threads(max(1, math.ceil(num_cpus)))
        self.engine = HFEngine(path, dtype=dtype, token_env=token_env, prefix_cache_mb=prefix_cache_mb)
        self.max_batch_size, self.batch_wait_timeout_s, self.chunk_interval_s = (
            max_batch_size,
            batch_wait_timeout_s,
            chunk_interval_s,
        )
        self.waiting: asyncio.Queue | None = None  # (request, caller's queue), made on the replica's event loop
        self.cancelled: set[asyncio.Queue] = set()
        self.loop_task: asyncio.Task | None = None
        self.batch_sizes: Tally[int] = Tally()  # decode steps by number of sequences decoded together
        tags = {"model": name}
        self.batch_size_metric = metrics.Histogram(
            "realm_serve_batch_size", "Sequences decoded together per step.", BATCH_BOUNDARIES, tag_keys=("model",)
        )
        self.tokens_metric = metrics.Counter("realm_serve_generated_tokens", "Tokens generated.", tag_keys=("model",))
        self.running_metric = metrics.Gauge(
            "realm_serve_running_sequences", "Sequences being decoded.", tag_keys=("model",)
        )
        self.waiting_metric = metrics.Gauge(
            "realm_serve_waiting_requests", "Requests waiting to join the batch.", tag_keys=("model",)
        )
        for metric in (self.batch_size_metric, self.tokens_metric, self.running_metric, self.waiting_metric):
            metric.set_default_tags(tags)

    async def generate(self, requests: list[GenerationRequest]) -> AsyncIterator[tuple[int, Delta]]:
        """The completions of a request's choices (all its prompts times ``n``), as ``(choice index, delta)``: deltas
        as text becomes final when streamed, else one delta per choice. One call for all choices: Serve's request
        routers track a caller's requests by its request id, which concurrent calls from one request would share."""
        if self.loop_task is None or self.loop_task.done():
            self.waiting = self.waiting or asyncio.Queue()
            self.loop_task = asyncio.create_task(self._decode_loop())
        out: asyncio.Queue = asyncio.Queue()
        choices = [_Choice(i, out) for i in range(len(requests))]
        for request, choice in zip(requests, choices):
            self.waiting.put_nowait((request, choice))
        text, tokens = [[] for _ in requests], [0] * len(requests)
        unfinished = set(range(len(requests)))
        try:
            while unfinished:
                i, delta = await out.get()
                if isinstance(delta, Exception):
                    raise delta
                text[i].append(delta.text)
                tokens[i] += delta.tokens
                if delta.finish_reason is not None:
                    unfinished.discard(i)
                if delta.finish_reason is not None or (requests[i].stream and delta.text):
                    yield i, self._signed(replace(delta, text="".join(text[i]), tokens=tokens[i]))
                    text[i], tokens[i] = [], 0
        finally:  # the caller went away: stop decoding for it
            self.cancelled.update(choices[i] for i in unfinished)

    def _signed(self, delta: Delta) -> Delta:
        """The last delta names this replica (the router returns it in the x-replica-id header)."""
        return replace(delta, replica=self.replica) if delta.finish_reason else delta

    def stats(self) -> dict:
        """This replica's process id, its decode steps by batch size, and prefix-cache reuse."""
        cache = self.engine.prefix_cache
        reuse = {"hits": cache.hits, "reused_tokens": cache.reused_tokens, "bytes": cache.bytes} if cache else None
        return {"model": self.name, "pid": os.getpid(), "batch_sizes": dict(self.batch_sizes), "prefix_cache": reuse}

    async def _decode_loop(self) -> None:
        batch = DecodeBatch(self.engine)
        while True:
            if not len(batch):
                joining = [await self.waiting.get()]
                await asyncio.sleep(self.batch_wait_timeout_s)  # let a burst of callers arrive together
            else:
                joining = []
            while len(batch) + len(joining) < self.max_batch_size and not self.waiting.empty():
                joining.append(self.waiting.get_nowait())
            joining = [(r, q) for r, q in joining if q not in self.cancelled]
            self.running_metric.set(len(batch) + len(joining))
            self.waiting_metric.set(self.waiting.qsize())
            try:
                results = await asyncio.to_thread(self._run_steps, batch, joining)
            except Exception as exc:  # a failed step fails its requests, never the replica
                logger.exception("%s: decode step failed", self.name)
                for q in {*batch.keys, *(q for _, q in joining)}:
                    q.put_nowait(exc)
                batch = DecodeBatch(self.engine)
                continue
            for q, delta in results:
                q.put_nowait(delta)
            self.cancelled.intersection_update(batch.keys)

    def _run_steps(self, batch: DecodeBatch, joining: list) -> list[tuple[asyncio.Queue, Delta]]:
        """Admit ``joining``, then decode until a sequence finishes, a caller is waiting, or the chunk
        interval passes; returns each sequence's text of those steps merged into one delta."""
        if joining:
            batch.add([r for r, _ in joining], [q for _, q in joining])
        merged: dict[asyncio.Queue, Delta] = {}
        deadline = time.perf_counter() + self.chunk_interval_s
        while len(batch):
            self.batch_sizes[len(batch)] += 1
            self.batch_size_metric.observe(len(batch))
            steps = batch.step(self.cancelled)
            tokens = 0
            for q, d in steps:
                tokens += d.tokens
                old = merged.get(q)
                merged[q] = d if old is None else replace(d, text=old.text + d.text, tokens=old.tokens + d.tokens)
            if tokens:
                self.tokens_metric.inc(tokens)
            if any(d.finish_reason for _, d in steps) or not self.waiting.empty() or time.perf_counter() > deadline:
                break
        return list(merged.items())
