"""An OpenAI-compatible endpoint and its sampling, as the rollout and eval sections name one."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .section import Section


class EndpointConfig(Section):
    model: str = Field(..., description="Model name sent in requests.")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (…/v1); null: our Serve app at serve.host:serve.port."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key; null sends a placeholder key."
    )
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, ge=1, description="Most tokens of one turn.")
    send_seed: bool = Field(
        True,
        description="Send a sampling seed with each request (reruns ask the same questions). Left out on its own "
        "when the endpoint is our Serve app running vLLM without GPUs, whose CPU engine fails on seeded requests.",
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields (e.g. vLLM's skip_special_tokens)."
    )
    timeout_s: float = Field(120, gt=0, description="Seconds before one request times out (then it is retried).")
    max_retries: int = Field(
        4, ge=0, description="Retries on 429, 5xx and timeouts (exponential backoff with jitter, Retry-After honoured)."
    )
    requests_per_minute: float | None = Field(
        None,
        gt=0,
        description="Request rate limit shared by every actor of the run (its start says how far apart that spaces "
        "requests); null: none.",
    )
    tokens_per_minute: float | None = Field(
        None, gt=0, description="Token rate limit (prompt + max_tokens) shared by every actor; null: none."
    )
    tokenizer: str | None = Field(
        None,
        description="Tokenizer for token counts: the rollout context budget, token rate limits (path or hub id); "
        "null: <workdir>/models/<model> if present, else ~4 characters a token.",
    )
    price_per_1k_prompt: float = Field(0.0, ge=0, description="Cost of 1,000 prompt tokens, for the cost estimate.")
    price_per_1k_completion: float = Field(
        0.0, ge=0, description="Cost of 1,000 completion tokens, for the cost estimate."
    )
