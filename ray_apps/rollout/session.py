"""One synthetic session: the simulator and the assistant take turns through OpenAI-compatible endpoints.

A user turn is a chat completion on the simulator's view of the conversation (its persona as the
system prompt, roles swapped); an assistant turn is a chat completion on the conversation itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import openai

from ..config import EndpointConfig, RolloutConfig
from ..conversation import ASSISTANT, SYSTEM, USER, message, simulator_view
from .filters import is_end, rejection

#: Failure reasons that a rerun tries again (the endpoint may be back); the others are final.
RETRYABLE = ("user_endpoint_error", "assistant_endpoint_error", "circuit_open")


class SessionFailed(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Usage:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"requests": self.requests, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "seconds": round(self.seconds, 3)}  # fmt: skip


@dataclass
class Endpoint:
    """One role's endpoint: client, sampling, the run's shared governor, and a token counter for budgets."""

    role: str
    cfg: EndpointConfig
    client: openai.AsyncOpenAI
    governor: object  # EndpointGovernor actor handle
    count_tokens: Callable[[list[dict]], int]

    async def chat(self, messages: list[dict], usage: Usage, seed: int) -> tuple[str, str]:
        """The reply text and finish reason; ``SessionFailed`` when the endpoint fails after its retries."""
        tokens = self.count_tokens(messages) + self.cfg.max_tokens if self.cfg.tokens_per_minute else 0  # only a token limit needs it
        wait, tripped = await self.governor.reserve.remote(tokens)
        if tripped:
            raise SessionFailed("circuit_open", tripped)
        if wait:
            await asyncio.sleep(wait)
        started = time.perf_counter()
        try:
            r = await self.client.chat.completions.create(
                model=self.cfg.model, messages=messages, temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_tokens, seed=seed, extra_body=self.cfg.extra_body or None,
            )  # fmt: skip
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            detail = f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:300]}"
            self.governor.report.remote(False, detail)
            raise SessionFailed(f"{self.role}_endpoint_error", detail) from None
        self.governor.report.remote(True)
        usage.requests += 1
        usage.seconds += time.perf_counter() - started
        if r.usage:
            usage.prompt_tokens += r.usage.prompt_tokens
            usage.completion_tokens += r.usage.completion_tokens
        return r.choices[0].message.content or "", r.choices[0].finish_reason


@dataclass
class Session:
    seed: dict  # key, id, and in seeded mode question (and answer)
    cfg: RolloutConfig
    messages: list[dict] = field(default_factory=list)
    usage: dict[str, Usage] = field(default_factory=lambda: {USER: Usage(), ASSISTANT: Usage()})
    rejected: Counter = field(default_factory=Counter)

    @property
    def persona(self) -> str:
        return self.cfg.personas[int(self.seed["key"], 16) % len(self.cfg.personas)]

    def user_turns(self) -> list[str]:
        return [m["content"] for m in self.messages if m["role"] == USER]

    def assistant_view(self) -> list[dict]:
        system = [message(SYSTEM, self.cfg.assistant_system_prompt)] if self.cfg.assistant_system_prompt else []
        return system + self.messages

    async def run(self, user: Endpoint, assistant: Endpoint, claim_opening) -> str:
        """Alternate turns until a stop condition; returns the stop reason (``SessionFailed`` on failure)."""
        if self.seed.get("question"):
            self.messages.append(message(USER, self.seed["question"]))
            if self.seed.get("answer"):
                self.messages.append(message(ASSISTANT, self.seed["answer"]))
        while True:
            if not self.messages or self.messages[-1]["role"] == ASSISTANT:
                stop = self._limit_reached(user, assistant)
                if stop or (stop := await self._user_turn(user, claim_opening)):
                    return stop
            text, finish = await assistant.chat(self.assistant_view(), self.usage[ASSISTANT], self._sampling_seed(1))
            if finish == "length" and self.cfg.on_length == "drop":
                self.messages.pop()
                return "assistant_length"
            self.messages.append(message(ASSISTANT, text))
            if finish == "length" and self.cfg.on_length == "end":
                return "assistant_length"

    def _limit_reached(self, user: Endpoint, assistant: Endpoint) -> str | None:
        if len(self.user_turns()) >= self.cfg.max_turns:
            return "max_turns"
        simulator = user.count_tokens(simulator_view(self.messages, system_prompt=self.persona)) + user.cfg.max_tokens
        answering = assistant.count_tokens(self.assistant_view()) + user.cfg.max_tokens + assistant.cfg.max_tokens
        if max(simulator, answering) > self.cfg.context_tokens:
            return "context_budget"
        return None

    async def _user_turn(self, user: Endpoint, claim_opening) -> str | None:
        """Ask the simulator (resampling filtered turns); append the turn, or return why the session ends."""
        earlier = self.user_turns()
        view = simulator_view(self.messages, system_prompt=self.persona)
        reason = None
        for attempt in range(self.cfg.max_resamples + 1):
            text, _ = await user.chat(view, self.usage[USER], self._sampling_seed(attempt))
            text = text.strip()
            if is_end(text):
                if len(earlier) >= self.cfg.min_turns:
                    return "end_marker"
                reason = "early_end"
            else:
                reason = rejection(text, earlier)
                if reason is None and not earlier and not await claim_opening(text):
                    reason = "duplicate_opening"
            if reason is None:
                self.messages.append(message(USER, text))
                return None
            self.rejected[reason] += 1
        return f"filtered_{reason}"

    def _sampling_seed(self, attempt: int) -> int:
        """Requests are seeded by session, turn and attempt, so a rerun asks the same questions."""
        return (int(self.seed["key"][:8], 16) + 1009 * len(self.messages) + attempt) % 2**31
