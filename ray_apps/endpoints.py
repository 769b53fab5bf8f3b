"""OpenAI-compatible endpoints, as every stage that calls a model uses them (the rollout, eval answers and
the judge): where requests go, checked at start; the API key; one chat call with its usage and error text,
within the run's shared rate limits and circuit breaker (``governor.py``); and a pool of async Ray Data actors
mapped over rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import openai
import ray

from .config import EndpointConfig, PipelineConfig
from .errors import RealmError
from .layout import RunLayout
from .models.tokens import chat_token_counter
from .runtime import vllm_on_cpu
from .tables import duration

# Every request of one session carries its key here, so Serve's session router sends its turns to one replica (Ray
# Serve's default session header; RAY_SERVE_SESSION_ID_HEADER_KEY renames it on the cluster).
SESSION_HEADER = "x-session-id"


class EndpointError(RealmError):
    """An endpoint that does not answer or does not serve the model; the message names the key and the URL."""


class CallFailed(Exception):
    """A request that failed after its retries (``endpoint_error``) or was not sent (``circuit_open``)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def api_key(cfg: EndpointConfig) -> str:
    """The key from ``cfg.api_key_env`` (never stored), or a placeholder for servers that want none."""
    return os.environ.get(cfg.api_key_env or "", "") or "unused"


def base_url(config: PipelineConfig) -> str:
    """The OpenAI base URL of this project's Serve app (`realm serve`), as clients reach it."""
    host = "127.0.0.1" if config.serve.host in ("0.0.0.0", "::") else config.serve.host
    return f"http://{host}:{config.serve.port}{config.serve.route_prefix.rstrip('/')}/v1"


@dataclass(frozen=True)
class ResolvedEndpoint:
    """Where an endpoint's requests go, as checked at start; it travels to the actors that call it."""

    base_url: str
    tokenizer: str | None  # counts its prompts' tokens (a model directory or hub id); None: a word estimate
    send_seed: bool  # whether requests carry a sampling seed


def resolve_endpoint(config: PipelineConfig, cfg: EndpointConfig, key: str) -> ResolvedEndpoint:
    """An endpoint, checked now: it answers and serves ``cfg.model``. ``key`` is the config key that names it
    (``rollout.user``, ``eval.judge``, ...), for the error."""
    url = cfg.base_url or base_url(config)
    client = openai.OpenAI(base_url=url, api_key=api_key(cfg), max_retries=2, timeout=30)
    try:
        served = [m.id for m in client.models.list()]
    except openai.APIError as exc:
        hint = "" if cfg.base_url else " (null means the serve app: start it with `realm serve --config ...`)"
        raise EndpointError(f"{key}.base_url: cannot list models at {url}: {exc}{hint}") from None
    if cfg.model not in served:
        raise EndpointError(f"{key}.model: {cfg.model!r} is not served at {url} (it serves {served})")
    local = RunLayout(config).model(cfg.model)
    tokenizer = cfg.tokenizer or (str(local) if (local / "tokenizer_config.json").is_file() else None)
    send_seed = cfg.send_seed and not (cfg.base_url is None and vllm_on_cpu(config, cfg.model))
    if cfg.send_seed and not send_seed:
        print(f"[{key}] no sampling seeds: vLLM's CPU engine fails on seeded requests (reruns sample anew)", flush=True)
    if limits := rate_limits(cfg):
        print(f"[{key}] {limits}", flush=True)
    return ResolvedEndpoint(url, tokenizer, send_seed)


def rate_limits(cfg: EndpointConfig) -> str | None:
    """What an endpoint's rate limits mean for a run, said at its start (a limit the schema accepts may mean a wait
    of years): the least time between two of its requests, across every actor of the run."""
    if not (cfg.requests_per_minute or cfg.tokens_per_minute):
        return None
    limits = [f"{k}={getattr(cfg, k):g}" for k in ("requests_per_minute", "tokens_per_minute") if getattr(cfg, k)]
    gap = max(
        60 / cfg.requests_per_minute if cfg.requests_per_minute else 0,
        60 * cfg.max_tokens / cfg.tokens_per_minute if cfg.tokens_per_minute else 0,  # a request counts its max_tokens
    )
    spacing = f"requests at least {duration(gap)} apart, 1,000 in at least {duration(1000 * gap)}"
    return f"rate limited ({', '.join(limits)}): {spacing}"


@dataclass
class Usage:
    """What one caller's requests to an endpoint cost."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # prompt tokens the server took from its prefix cache (when it reports them)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"seconds": round(self.seconds, 3)}


def describe(exc: openai.APIError) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' {status}' if status else ''}: {str(exc)[:300]}"


class Endpoint:
    """An endpoint as an actor calls it: an async client (make it on the actor's event loop), the run's
    governor, the endpoint's sampling, and a token counter for its token budgets.

    The governor is asked before each request only when the endpoint has a rate limit; outcomes go to it in a batch
    when a request fails or ``REPORT_EVERY_S`` after the last report, and its answer says whether the breaker opened.
    """

    REPORT_EVERY_S = 0.5

    def __init__(self, cfg: EndpointConfig, resolved: ResolvedEndpoint, governor):
        self.cfg, self.governor = cfg, governor
        self.limited = bool(cfg.requests_per_minute or cfg.tokens_per_minute)
        self.unreported: list[tuple[bool, str]] = []
        self.reported = time.monotonic()
        self.tripped: str | None = None  # the breaker's message, once a report's answer said it opened
        self.reports: set[asyncio.Task] = set()  # reports on their way (the loop keeps weak references only)
        self.client = openai.AsyncOpenAI(
            base_url=resolved.base_url, api_key=api_key(cfg), max_retries=cfg.max_retries, timeout=cfg.timeout_s
        )
        self.count_tokens = chat_token_counter(resolved.tokenizer)
        self.send_seed = resolved.send_seed

    async def chat(
        self,
        messages: list[dict],
        usage: Usage | None = None,
        *,
        temperature: float | None = None,
        seed: int | None = None,
        session: str | None = None,
    ) -> tuple[str, str | None]:
        """The reply text and finish reason; ``CallFailed`` when the endpoint fails after its retries. ``session``
        names the conversation a request belongs to (its turns share a prefix: a session router keeps them on one
        replica). Every request of this project is sent here (so its headers and fields are set in this one place)."""
        await self._reserve(messages)
        started = time.perf_counter()
        try:
            r = await self.client.chat.completions.create(
                model=self.cfg.model,
                messages=messages,
                temperature=self.cfg.temperature if temperature is None else temperature,
                top_p=self.cfg.top_p,
                max_tokens=self.cfg.max_tokens,
                extra_body=self.cfg.extra_body or None,
                extra_headers={SESSION_HEADER: session} if session else None,
                **({"seed": seed} if seed is not None and self.send_seed else {}),
            )
        except openai.APIError as exc:
            detail = describe(exc)
            self._report(False, detail)
            raise CallFailed("endpoint_error", detail) from None
        self._report(True)
        if usage is not None:
            usage.requests += 1
            usage.seconds += time.perf_counter() - started
            if r.usage:
                usage.prompt_tokens += r.usage.prompt_tokens
                usage.completion_tokens += r.usage.completion_tokens
                details = r.usage.prompt_tokens_details
                usage.cached_prompt_tokens += (details.cached_tokens or 0) if details else 0
        return r.choices[0].message.content or "", r.choices[0].finish_reason

    async def _reserve(self, messages: list[dict]) -> None:
        """Wait for the request's turn under the run's limits; ``CallFailed`` when the breaker is open."""
        if self.limited:
            # Only a token rate limit needs the prompt's token count.
            tokens = self.count_tokens(messages) + self.cfg.max_tokens if self.cfg.tokens_per_minute else 0
            wait, self.tripped = await self.governor.reserve.remote(tokens)
            if wait and not self.tripped:
                await asyncio.sleep(wait)
        if self.tripped:
            raise CallFailed("circuit_open", self.tripped)

    def _report(self, ok: bool, error: str = "") -> None:
        self.unreported.append((ok, error))
        if ok and time.monotonic() - self.reported < self.REPORT_EVERY_S:
            return
        outcomes, self.unreported, self.reported = self.unreported, [], time.monotonic()
        task = asyncio.get_running_loop().create_task(self._learn(self.governor.report.remote(outcomes)))
        self.reports.add(task)
        task.add_done_callback(self.reports.discard)

    async def _learn(self, answer) -> None:
        try:
            self.tripped = await answer or self.tripped
        except ray.exceptions.RayActorError:  # the run ended, and its governor with it
            pass


#: CPUs each actor of ``map_rows`` asks for: they wait on endpoints, so many share a core.
ACTOR_CPUS = 0.1


def map_rows(
    items: list[dict], actor: type, kwargs: dict, *, actors: int, batch_size: int, blocks: int
) -> Iterator[dict]:
    """The rows ``actor(**kwargs)`` yields for batches of ``items`` (each as JSON in the ``item`` column), from
    a pool of ``actors`` async Ray Data actors spread over the cluster's nodes. An actor runs four batches at
    once on its event loop, so its requests overlap; the caller consumes rows as batches finish."""
    ds = ray.data.from_items(
        [{"item": json.dumps(i, ensure_ascii=False)} for i in items],
        override_num_blocks=max(1, min(len(items), blocks)),
    )
    ds = ds.map_batches(
        actor,
        fn_constructor_kwargs=kwargs,
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(
            size=actors, max_tasks_in_flight_per_actor=4, max_concurrent_calls_per_actor=4
        ),
        num_cpus=ACTOR_CPUS,  # Ray Data spreads an actor pool over the nodes by itself
    )
    return ds.iter_rows()
