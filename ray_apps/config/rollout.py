"""The `realm rollout` section."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, model_validator

from ..conversation import PROMPTED_USER_PROMPT, SIMULATOR_SYSTEM_PROMPT
from .endpoint import EndpointConfig
from .section import Section


class UserEndpointConfig(EndpointConfig):
    model: str = Field("usergpt", description="Model name sent in requests (the user simulator).")
    temperature: float = Field(0.9, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(128, ge=1, description="Most tokens of one user turn.")


class AssistantEndpointConfig(EndpointConfig):
    model: str = Field("baseline", description="Model name sent in requests (the assistant).")


class PromptedSimulatorConfig(Section):
    """An instruct model prompted to play the user, rolled out next to the trained simulator and measured alike."""

    user: UserEndpointConfig = Field(
        default_factory=lambda: UserEndpointConfig(model="base"),
        description="Its endpoint and sampling; model `base` is model.base as it is, served here.",
    )
    personas: list[str] = Field(
        default_factory=lambda: [PROMPTED_USER_PROMPT],
        min_length=1,
        description="Its system prompts (user personas); each session gets one (by a hash of its seed).",
    )
    output: str | None = Field(None, description="Output directory; null: <workdir>/realchat-prompted.")


class RolloutConfig(Section):
    mode: Literal["free", "seeded"] = Field(
        "free", description="free: the simulator opens every session; seeded: sessions start from `seeds`."
    )
    seeds: str | None = Field(
        None, description="Seeded mode: JSONL or Parquet with `id` and `question` (and optionally `answer`)."
    )
    num_sessions: int = Field(200, ge=1, description="Free mode: number of sessions.")
    output: str | None = Field(None, description="Output directory; null: <workdir>/realchat.")
    user: UserEndpointConfig = Field(
        default_factory=UserEndpointConfig, description="The user simulator's endpoint and sampling."
    )
    assistant: AssistantEndpointConfig = Field(
        default_factory=AssistantEndpointConfig, description="The assistant's endpoint and sampling."
    )
    personas: list[str] = Field(
        default_factory=lambda: [SIMULATOR_SYSTEM_PROMPT],
        min_length=1,
        description="Simulator system prompts; each session gets one (by a hash of its seed).",
    )
    simulator: Literal["trained", "prompted"] = Field(
        "trained",
        description="What plays the user, written to each session's meta.simulator: trained (a UserGPT) or prompted "
        "(an instruct model given a persona).",
    )
    compare_with: PromptedSimulatorConfig | None = Field(
        None,
        description="`realm pipeline`: also roll out a prompted simulator (same assistant, sessions and seeds) and "
        "measure both against the real people; null: the trained one alone.",
    )
    assistant_system_prompt: str | None = Field(None, description="System prompt of the assistant; null: none.")
    max_turns: int = Field(8, ge=1, description="Most user turns in a session.")
    min_turns: int = Field(1, ge=1, description="Fewest user turns; a shorter session is written as a failure.")
    context_tokens: int = Field(
        2048, ge=64, description="Context budget: a session stops before a turn could overflow it."
    )
    on_length: Literal["keep", "end", "drop"] = Field(
        "keep",
        description="An assistant answer cut by max_tokens: keep it and go on, keep it and end, or drop the exchange "
        "and end.",
    )
    max_resamples: int = Field(3, ge=0, description="Times a filtered user turn is resampled before the session ends.")
    dedup_threshold: float = Field(
        0.85,
        gt=0,
        le=1,
        description="Opening questions this similar (MinHash Jaccard) to an earlier one are duplicates.",
    )
    actors: int = Field(2, ge=1, description="Ray Data actors driving sessions.")
    sessions_per_actor: int = Field(16, ge=1, description="Sessions in flight in one actor (asyncio).")
    breaker_error_rate: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Stop the run when this share of recent requests to an endpoint failed after retries.",
    )
    breaker_window: int = Field(20, ge=1, description="Recent requests the circuit breaker looks at.")
    progress_interval_s: float = Field(10, gt=0, description="Seconds between progress summary lines.")
    max_failure_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Exit non-zero (after writing everything) when more than this share of the seeds failed.",
    )

    @model_validator(mode="after")
    def _turns_fit(self) -> RolloutConfig:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns={self.min_turns} > max_turns={self.max_turns}: every session would fail")
        for key, user in (("user", self.user), ("compare_with.user", self.compare_with and self.compare_with.user)):
            turn = user.max_tokens + self.assistant.max_tokens if user else 0
            if self.context_tokens <= turn:
                raise ValueError(
                    f"context_tokens={self.context_tokens} leaves no room for a prompt next to one exchange of "
                    f"{key}.max_tokens + assistant.max_tokens = {turn}: every session would stop before its first turn"
                )
        return self

    def prompted(self) -> RolloutConfig:
        """The rollout of ``compare_with``: this one with the prompted simulator's endpoint, personas and output."""
        cw = self.compare_with
        if cw is None:
            raise ValueError("rollout.compare_with is null: no prompted simulator to roll out")
        update = {"user": cw.user, "personas": cw.personas, "output": cw.output, "simulator": "prompted"}
        return self.model_copy(update=update | {"compare_with": None})

    def served_here(self) -> list[str]:
        """The models of the rollout's endpoints that no ``base_url`` hosts: the pipeline serves them."""
        return list(dict.fromkeys(e.model for e in (self.user, self.assistant) if e.base_url is None))

    def session_fingerprint(self) -> str:
        """Hash of what decides a session's content: resuming with other settings starts new sessions. Not how many
        there are: raising ``num_sessions`` keeps the sessions made and adds the rest."""
        keep = {
            "mode",
            "seeds",
            "personas",
            "assistant_system_prompt",
            "max_turns",
            "min_turns",
            "context_tokens",
            "on_length",
            "max_resamples",
            "dedup_threshold",
        }
        operational = {
            "max_retries",
            "timeout_s",
            "requests_per_minute",
            "tokens_per_minute",
            "price_per_1k_prompt",
            "price_per_1k_completion",
        }
        data = self.model_dump(mode="json", include=keep)
        for role in ("user", "assistant"):
            data[role] = getattr(self, role).model_dump(mode="json", exclude=operational)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
