"""The Ray Data actor that drives sessions: many at once on one event loop, each batch one shard."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
from ray.util import metrics

from ..config import DedupConfig, RolloutConfig
from ..conversation import ASSISTANT, USER
from ..endpoints import Endpoint, ResolvedEndpoint
from ..errors import internal_failure
from ..outcomes import Outcome
from .openings import sketch
from .session import Session, SessionFailed
from .store import write_shard

logger = logging.getLogger(__name__)


class SessionRunner:
    """``map_batches`` callable: a batch of seeds in, one shard of their outcomes written, their keys out (the
    driver follows the shards)."""

    def __init__(
        self,
        rollout: dict,
        endpoints: dict[str, ResolvedEndpoint],
        governors: dict,
        openings,
        output: str,
        mode_meta: dict,
    ):
        self.cfg = RolloutConfig.model_validate(rollout)
        self.dedup = DedupConfig(threshold=self.cfg.dedup_threshold)
        self.resolved = endpoints
        self.governors, self.openings, self.output, self.mode_meta = governors, openings, Path(output), mode_meta
        self.endpoints: dict[str, Endpoint] | None = None
        self.in_flight: asyncio.Semaphore | None = None
        self.sessions_metric = metrics.Counter(
            "realm_rollout_sessions", "Seeds finished, by status.", tag_keys=("status",)
        )
        self.tokens_metric = metrics.Counter("realm_rollout_tokens", "Completion tokens, by role.", tag_keys=("role",))

    async def __call__(self, batch: dict[str, np.ndarray]):
        if self.endpoints is None:  # made on the actor's event loop
            self.endpoints = {
                role: Endpoint(getattr(self.cfg, role), self.resolved[role], self.governors[role])
                for role in (USER, ASSISTANT)
            }
            self.in_flight = asyncio.Semaphore(self.cfg.sessions_per_actor)
        seeds = [json.loads(s) for s in batch["item"]]
        outcomes = await asyncio.gather(*[self._run(seed) for seed in seeds])
        write_shard(self.output, outcomes)
        yield {"key": [o.key for o in outcomes]}

    async def _run(self, seed: dict) -> Outcome:
        async with self.in_flight:
            session = Session(seed, self.cfg)
            try:
                stop = await session.run(self.endpoints[USER], self.endpoints[ASSISTANT], self._claim)
            except SessionFailed as exc:
                return self._failure(session, exc.reason, exc.detail)
            except Exception as exc:  # a bug must not lose the batch: the seed is written as a failure
                logger.exception("session %s failed", seed["key"])
                return self._failure(session, **internal_failure(exc))
            if len(session.user_turns()) < self.cfg.min_turns:
                return self._failure(
                    session, stop, f"{len(session.user_turns())} user turns, fewer than rollout.min_turns"
                )
            return self._session(session, stop)

    async def _claim(self, text: str) -> bool:
        return await self.openings.claim.remote(*sketch(text, self.dedup))

    def _usage(self, session: Session) -> dict:
        usage = {role: u.as_dict() for role, u in session.usage.items()}
        for role, u in usage.items():
            if u["completion_tokens"]:
                self.tokens_metric.inc(u["completion_tokens"], tags={"role": role})
        return usage

    def _session(self, session: Session, stop: str) -> Outcome:
        self.sessions_metric.inc(tags={"status": "session"})
        meta = {
            **self.mode_meta,
            "seed_id": session.seed["id"],
            "persona": session.persona,
            "stop_reason": stop,
            "ended_naturally": stop
            == "end_marker",  # the simulator ended it: UserGPT trained on it learns the end marker
            "user_turns": len(session.user_turns()),
            "rejected_user_turns": dict(session.rejected),
            "usage": self._usage(session),
        }
        return Outcome.session(session.seed["key"], session.messages, meta)

    def _failure(self, session: Session, reason: str, detail: str, traceback: str | None = None) -> Outcome:
        self.sessions_metric.inc(tags={"status": "failure"})
        return Outcome.failure(
            session.seed["key"],
            session.seed["id"],
            reason,
            detail,
            messages=session.messages,
            usage=self._usage(session),
            rejected_user_turns=dict(session.rejected),
            traceback=traceback,
        )
