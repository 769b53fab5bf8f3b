"""Many independent jobs against one OpenAI-compatible endpoint (answering questions, judging answers),
sent by Ray Data actors and appended to a JSONL file as each finishes.

A job is ``await work(chat, item)``, where ``chat(messages, temperature)`` returns the reply text;
the actors bring the endpoint layer: client, retries, the run's shared rate limits and circuit
breaker. A job whose endpoint fails after retries becomes a failure record with its reason; the
output file keeps only finished records, so rerunning resumes with what is missing.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from ray.util import metrics

from ..config import EndpointConfig, EvalConfig
from ..endpoints import CallFailed, Endpoint, ResolvedEndpoint, map_rows
from ..errors import RealmError, failure_share, internal_failure, print_first_traceback
from ..governor import start_governor, stop_governors, tripped
from ..records import write_jsonl

logger = logging.getLogger(__name__)

Chat = Callable[[list[dict], float], Awaitable[str]]


class EvalError(RealmError, RuntimeError):
    """An evaluation that had to stop; the message says why and how to resume."""


class JobRunner:
    """``map_batches`` callable: each item through ``work(chat, item)`` on the actor's event loop."""

    def __init__(self, task: str, work: Callable, endpoint: dict, resolved: ResolvedEndpoint, governor, in_flight: int):
        self.task, self.work, self.cfg = task, work, EndpointConfig.model_validate(endpoint)
        self.resolved, self.governor, self.in_flight = resolved, governor, in_flight
        self.endpoint: Endpoint | None = None
        self.limit: asyncio.Semaphore | None = None
        self.metric = metrics.Counter(
            "realm_eval_jobs", "Eval jobs finished, by task and status.", tag_keys=("task", "status")
        )

    async def __call__(self, batch: dict[str, np.ndarray]):
        if self.endpoint is None:  # made on the actor's event loop
            self.endpoint = Endpoint(self.cfg, self.resolved, self.governor)
            self.limit = asyncio.Semaphore(self.in_flight)
        results = await asyncio.gather(*[self._one(json.loads(item)) for item in batch["item"]])
        yield {
            "ok": [ok for ok, _ in results],
            "record": [json.dumps(record, ensure_ascii=False) for _, record in results],
        }

    async def _one(self, item: dict) -> tuple[bool, dict]:
        async with self.limit:
            try:
                record = await self.work(functools.partial(self._chat, session=json.dumps(item["key"])), item)
            except CallFailed as exc:
                self.metric.inc(1, {"task": self.task, "status": "failure"})
                return False, {"key": item["key"], "reason": "endpoint_error", "detail": exc.detail}
            except Exception as exc:  # a bug must not lose the run: the item is written as a failure
                logger.exception("%s: %s failed", self.task, item["key"])
                self.metric.inc(1, {"task": self.task, "status": "failure"})
                return False, {"key": item["key"], **internal_failure(exc)}
        self.metric.inc(1, {"task": self.task, "status": "done"})
        return True, record

    async def _chat(self, messages: list[dict], temperature: float, session: str) -> str:
        return (await self.endpoint.chat(messages, temperature=temperature, session=session))[0]


def run_jobs(
    task: str,
    items: list[dict],
    work: Callable,
    endpoint: EndpointConfig,
    resolved: ResolvedEndpoint,
    cfg: EvalConfig,
    output: Path,
    failures: Path,
) -> dict:
    """Run ``items`` (each with a ``key``), appending finished records to ``output`` and the failed
    ones' reasons to ``failures`` (rewritten each run); returns counts."""
    from tqdm.auto import tqdm

    failed, reason = [], None
    if items:
        governor = start_governor(endpoint, resolved.base_url)
        try:
            rows = map_rows(
                items,
                JobRunner,
                {
                    "task": task,
                    "work": work,
                    "endpoint": endpoint.model_dump(mode="json"),
                    "resolved": resolved,
                    "governor": governor,
                    "in_flight": cfg.requests_per_actor,
                },
                actors=cfg.actors,
                batch_size=max(1, cfg.requests_per_actor // 2),
                blocks=8 * cfg.actors,
            )
            with output.open("a") as out, tqdm(total=len(items), desc=task, unit=task.split()[-1]) as bar:
                for row in rows:
                    if row["ok"]:
                        out.write(row["record"] + "\n")
                        out.flush()
                    else:
                        failed.append(json.loads(row["record"]))
                    bar.update(1)
                    bar.set_postfix(failed=len(failed))
            reason = tripped([governor])
        finally:
            stop_governors([governor])
    write_jsonl(failures, failed)
    print_first_traceback(f"eval {task}", failed, failures)
    if reason:
        raise EvalError(
            f"{task}: {reason}. Stopped; finished work is kept in {output}: rerun the same command to resume."
        )
    if problem := failure_share(
        len(failed), len(items), cfg.max_failure_fraction, "eval.max_failure_fraction", "failed"
    ):
        raise EvalError(
            f"{task}: {problem}; finished work is kept in {output}, the failures with their reasons in {failures}: "
            "rerun the same command to retry them."
        )
    return {"done": len(items) - len(failed), "failed": len(failed)}
