"""One synthetic session: the simulator and the assistant take turns through OpenAI-compatible endpoints.

A user turn is a chat completion on the simulator's view of the conversation (its persona as the
system prompt, roles swapped); an assistant turn is a chat completion on the conversation itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..config import RolloutConfig
from ..conversation import ASSISTANT, SYSTEM, USER, ends_conversation, message, simulator_view
from ..endpoints import CallFailed, Endpoint, Usage
from ..errors import INTERNAL_ERROR
from ..user_turns import rejection

#: Failure reasons that a rerun tries again (the endpoint may be back, the bug fixed); the others are final.
RETRYABLE = ("user_endpoint_error", "assistant_endpoint_error", "circuit_open", INTERNAL_ERROR)


class SessionFailed(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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
            text, finish = await self._ask(assistant, ASSISTANT, self.assistant_view(), self._sampling_seed(1))
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
            text, _ = await self._ask(user, USER, view, self._sampling_seed(attempt))
            text = text.strip()
            if ends_conversation(text):
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

    async def _ask(self, endpoint: Endpoint, role: str, messages: list[dict], seed: int) -> tuple[str, str | None]:
        try:
            return await endpoint.chat(messages, self.usage[role], seed=seed, session=self.seed["key"])
        except CallFailed as exc:
            raise SessionFailed(
                exc.reason if exc.reason == "circuit_open" else f"{role}_{exc.reason}", exc.detail
            ) from None

    def _sampling_seed(self, attempt: int) -> int:
        """Requests are seeded by session, turn and attempt, so a rerun asks the same questions."""
        return (int(self.seed["key"][:8], 16) + 1009 * len(self.messages) + attempt) % 2**31
