"""Many independent jobs against one OpenAI-compatible endpoint (answering questions, judging answers),
sent by Ray Data actors and appended to a JSONL file as each finishes.

A job is ``await work(chat, item)``, where ``chat(messages, temperature)`` returns the reply text;
the actors bring the client, its retries, the run's shared rate limits and the circuit breaker. A
job whose endpoint fails after retries becomes a failure record with its reason; the output file
keeps only finished records, so rerunning resumes with what is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import openai
import ray
from ray.util import metrics

from ..config import EndpointConfig, EvalConfig
from ..rollout.shared import EndpointGovernor
from ..rollout.store import write_jsonl
from ..rollout.tokens import token_counter

Chat = Callable[[list[dict], float], Awaitable[str]]


class EvalError(RuntimeError):
    """An evaluation that had to stop; the message says why and how to resume."""


class EndpointDown(RuntimeError):
    """The run's circuit breaker is open: the endpoint failed every recent request."""


class JobRunner:
    """``map_batches`` callable: each item through ``work(chat, item)`` on the actor's event loop."""

    def __init__(self, task: str, work: Callable, endpoint: dict, base_url: str, governor, in_flight: int):
        self.task, self.work, self.cfg, self.base_url, self.governor = task, work, EndpointConfig.model_validate(endpoint), base_url, governor
        self.in_flight, self.client, self.limit = in_flight, None, None
        self.count_tokens = token_counter(self.cfg.tokenizer)
        self.metric = metrics.Counter("realm_eval_jobs", "Eval jobs finished, by task and status.", tag_keys=("task", "status"))

    async def __call__(self, batch: dict[str, np.ndarray]):
        if self.client is None:  # made on the actor's event loop
            api_key = os.environ.get(self.cfg.api_key_env or "", "") or "unused"
            self.client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=self.cfg.max_retries, timeout=self.cfg.timeout_s)
            self.limit = asyncio.Semaphore(self.in_flight)
        results = await asyncio.gather(*[self._one(json.loads(item)) for item in batch["item"]])
        yield {"ok": [ok for ok, _ in results], "record": [json.dumps(record, ensure_ascii=False) for _, record in results]}

    async def _one(self, item: dict) -> tuple[bool, dict]:
        async with self.limit:
            try:
                record = await self.work(self._chat, item)
            except (openai.APIError, EndpointDown) as exc:
                status = getattr(exc, "status_code", None)
                detail = f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:300]}"
                self.metric.inc(1, {"task": self.task, "status": "failure"})
                return False, {"key": item["key"], "reason": "endpoint_error", "detail": detail}
        self.metric.inc(1, {"task": self.task, "status": "done"})
        return True, record

    async def _chat(self, messages: list[dict], temperature: float) -> str:
        tokens = self.count_tokens(messages) + self.cfg.max_tokens if self.cfg.tokens_per_minute else 0
        wait, tripped = await self.governor.reserve.remote(tokens)
        if tripped:
            raise EndpointDown(tripped)
        if wait:
            await asyncio.sleep(wait)
        try:
            r = await self.client.chat.completions.create(
                model=self.cfg.model, messages=messages, temperature=temperature, top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_tokens, extra_body=self.cfg.extra_body or None,
            )  # fmt: skip
        except openai.APIError as exc:
            self.governor.report.remote(False, f"{type(exc).__name__}: {str(exc)[:200]}")
            raise
        self.governor.report.remote(True)
        return r.choices[0].message.content or ""


def run_jobs(task: str, items: list[dict], work: Callable, endpoint: EndpointConfig, base_url: str, cfg: EvalConfig,
             output: Path, failures: Path) -> dict:  # fmt: skip
    """Run ``items`` (each with a ``key``), appending finished records to ``output`` and the failed
    ones' reasons to ``failures`` (rewritten each run); returns counts."""
    from tqdm.auto import tqdm

    governor = EndpointGovernor.remote(base_url, endpoint.requests_per_minute, endpoint.tokens_per_minute, 1.0, 20)
    failed = []
    if items:
        ds = ray.data.from_items([{"item": json.dumps(i, ensure_ascii=False)} for i in items], override_num_blocks=min(len(items), 8 * cfg.actors))
        ds = ds.map_batches(
            JobRunner,
            fn_constructor_kwargs={"task": task, "work": work, "endpoint": endpoint.model_dump(mode="json"), "base_url": base_url,
                                   "governor": governor, "in_flight": cfg.requests_per_actor},  # fmt: skip
            batch_size=max(1, cfg.requests_per_actor // 2),
            compute=ray.data.ActorPoolStrategy(size=cfg.actors, max_tasks_in_flight_per_actor=4, max_concurrent_calls_per_actor=4),
            num_cpus=0.1,
        )
        with output.open("a") as out, tqdm(total=len(items), desc=task, unit=task.split()[-1]) as bar:
            for row in ds.iter_rows():
                if row["ok"]:
                    out.write(row["record"] + "\n")
                    out.flush()
                else:
                    failed.append(json.loads(row["record"]))
                bar.update(1)
                bar.set_postfix(failed=len(failed))
    write_jsonl(failures, failed)
    if tripped := ray.get(governor.tripped_reason.remote()):
        raise EvalError(f"{task}: {tripped}. Stopped; finished work is kept in {output}: rerun the same command to resume.")
    return {"done": len(items) - len(failed), "failed": len(failed)}
