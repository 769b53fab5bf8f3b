"""The HTTP face of the `hf` engine: an OpenAI-compatible FastAPI ingress that routes by model name.

The router owns the protocol: it checks auth, validates the request, applies the model's chat
template, checks the context length, and only then asks the model's deployment for tokens. So a
bad request is a 4xx here and never costs a replica anything.
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime.
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from jinja2 import TemplateError
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.util import metrics
from starlette.exceptions import HTTPException

from ..endpoints import SESSION_HEADER
from ..models.loading import context_length, load_tokenizer
from . import protocol
from .engine import Delta, GenerationRequest, SamplingParams
from .protocol import APIError, ChatRequest, CompletionRequest

REPLICA_HEADER = "x-replica-id"  # which model replica answered (non-streamed responses)
api = FastAPI(title="ReaLM on Ray", description="OpenAI-compatible chat and completions for the served models.")
LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120]


@api.exception_handler(APIError)
async def _api_error(_: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


@api.exception_handler(HTTPException)
async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    """Unknown routes and wrong methods answer with an OpenAI error body too."""
    return JSONResponse(APIError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)


@serve.deployment
@serve.ingress(api)
class OpenAIRouter:
    """Routes OpenAI requests to the `ModelServer` deployment of the model they name."""

    def __init__(
        self,
        models: dict[str, DeploymentHandle],
        paths: dict[str, str],
        *,
        max_model_len: int | None,
        max_n: int,
        api_key_sha256: str | None,
        token_env: str,
    ):
        self.handles = {name: handle.options(stream=True) for name, handle in models.items()}
        self.tokenizers = {name: load_tokenizer(path, token_env) for name, path in paths.items()}
        self.context = {name: max_model_len or context_length(path, token_env) for name, path in paths.items()}
        self.max_n = max_n
        self.api_key_sha256 = api_key_sha256
        self.created = int(time.time())
        self.requests_metric = metrics.Counter(
            "realm_serve_requests",
            "HTTP requests by model, endpoint and status.",
            tag_keys=("model", "endpoint", "status"),
        )
        self.latency_metric = metrics.Histogram(
            "realm_serve_request_latency_s",
            "Seconds from request to last token.",
            LATENCY_BOUNDARIES,
            tag_keys=("model", "endpoint"),
        )
        self.prompt_tokens_metric = metrics.Counter(
            "realm_serve_prompt_tokens", "Prompt tokens received.", tag_keys=("model",)
        )

    # --- endpoints -------------------------------------------------------------------------

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok", "models": sorted(self.handles)}

    @api.get("/v1/models")
    async def list_models(self, request: Request) -> dict:
        self._authorize(request)
        data = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "realm"}
            for name in sorted(self.handles)
        ]
        return {"object": "list", "data": data}

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        return await self._serve(request, ChatRequest, "chat")

    @api.post("/v1/completions")
    async def completions(self, request: Request):
        return await self._serve(request, CompletionRequest, "completions")

    # --- one request -----------------------------------------------------------------------

    async def _serve(self, http: Request, schema: type, endpoint: str):
        started, model = time.perf_counter(), ""
        try:
            self._authorize(http)
            request = protocol.parse_request(await http.body(), schema)
            model = request.model
            if model not in self.handles:
                raise APIError(
                    404,
                    f"The model `{model}` does not exist. Served: {sorted(self.handles)}.",
                    param="model",
                    code="model_not_found",
                )
            prompts = self._prompts(request, endpoint)
            choices = [
                (p, replace(params, seed=None if params.seed is None else params.seed + j))
                for p, params in prompts
                for j in range(request.n)
            ]
            prompt_tokens = sum(len(ids) for ids, _ in prompts)
            self.prompt_tokens_metric.inc(prompt_tokens, tags={"model": model})
            handle = self.handles[model]
            if session := http.headers.get(SESSION_HEADER):  # Serve's session router keeps a session on one replica
                handle = handle.options(session_id=session)
            deltas = handle.generate.remote([GenerationRequest(ids, p, request.stream) for ids, p in choices])
            if request.stream:
                events = self._events(deltas, request, endpoint, len(choices), prompt_tokens, started)
                return StreamingResponse(events, media_type="text/event-stream")
            texts, finishes, completion_tokens = [""] * len(choices), [""] * len(choices), 0
            cached, replicas = [0] * len(choices), set()
            async for index, delta in deltas:
                texts[index] += delta.text
                completion_tokens += delta.tokens
                finishes[index] = delta.finish_reason or finishes[index]
                cached[index] = max(cached[index], delta.cached_tokens)
                replicas.add(delta.replica)
            build = protocol.chat_completion if endpoint == "chat" else protocol.completion
            body = build(
                protocol.new_id("chatcmpl" if endpoint == "chat" else "cmpl"),
                model,
                texts,
                finishes,
                protocol.usage(prompt_tokens, completion_tokens, sum(cached[:: request.n])),  # a prompt's first choice
            )
            self._observe(model, endpoint, 200, started)
            headers = {REPLICA_HEADER: ",".join(sorted(replicas - {""}))}
            return JSONResponse(body.model_dump(exclude_none=False), headers=headers)
        except Exception as exc:
            error = protocol.as_api_error(exc)
            self._observe(model or "unknown", endpoint, error.status, started)
            return JSONResponse(error.body(), status_code=error.status)

    def _prompts(self, request, endpoint: str) -> list[tuple[list[int], SamplingParams]]:
        """Token ids and sampling settings of each prompt, after the context-length checks."""
        tokenizer = self.tokenizers[request.model]
        if request.n > self.max_n:
            raise APIError(400, f"n must be at most {self.max_n}", param="n", code="invalid_value")
        if endpoint == "chat":
            try:
                text = tokenizer.apply_chat_template(
                    request.chat_messages(), add_generation_prompt=True, tokenize=False
                )
            except (TemplateError, ValueError) as exc:  # e.g. a template that insists on alternating roles
                raise APIError(
                    400,
                    f"messages do not fit this model's chat template: {exc}",
                    param="messages",
                    code="invalid_messages",
                ) from None
            encoded, param = [tokenizer(text, add_special_tokens=False).input_ids], "messages"
        else:
            encoded, param = [tokenizer(p).input_ids for p in request.prompt], "prompt"
        limit = self.context[request.model]
        out = []
        for ids in encoded:
            if len(ids) >= limit:
                raise APIError(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, your {param} "
                    f"resulted in {len(ids)} tokens.",
                    param=param,
                    code="context_length_exceeded",
                )
            room = limit - len(ids)
            if request.max_tokens is not None and request.max_tokens > room:
                raise APIError(
                    400,
                    f"This model's maximum context length is {limit} tokens. However, you requested "
                    f"{len(ids) + request.max_tokens} tokens ({len(ids)} in the {param}, {request.max_tokens} "
                    "for the completion).",
                    param="max_tokens",
                    code="context_length_exceeded",
                )
            params = SamplingParams(
                max_tokens=request.max_tokens or room,
                temperature=request.temperature,
                top_p=request.top_p,
                stop=tuple(request.stop),
                seed=request.seed,
                skip_special_tokens=request.skip_special_tokens,
                logit_bias=self._logit_bias(request),
            )
            out.append((ids, params))
        return out

    def _logit_bias(self, request) -> tuple[tuple[int, float], ...]:
        if not request.logit_bias:
            return ()
        vocabulary = len(self.tokenizers[request.model])
        unknown = [token for token in request.logit_bias if not 0 <= token < vocabulary]
        if unknown:
            raise APIError(
                400,
                f"logit_bias: token ids {unknown[:4]} are not in this model's vocabulary of {vocabulary}",
                param="logit_bias",
                code="invalid_value",
            )
        return tuple(sorted(request.logit_bias.items()))

    async def _events(
        self,
        deltas: AsyncIterator[tuple[int, Delta]],
        request,
        endpoint: str,
        n: int,
        prompt_tokens: int,
        started: float,
    ) -> AsyncIterator[str]:
        """The SSE stream: a role chunk per choice (chat), content chunks, finish chunks, usage, [DONE]."""
        rid, model, completion_tokens, status = (
            protocol.new_id("chatcmpl" if endpoint == "chat" else "cmpl"),
            request.model,
            0,
            200,
        )
        try:
            if endpoint == "chat":
                for i in range(n):
                    yield protocol.sse(protocol.chat_chunk(rid, model, i, role="assistant", content=""))
            cached = [0] * n
            async for index, delta in deltas:
                completion_tokens += delta.tokens
                cached[index] = max(cached[index], delta.cached_tokens)
                if not delta.text and delta.finish_reason is None:
                    continue
                if endpoint == "chat":
                    chunk = protocol.chat_chunk(
                        rid, model, index, content=delta.text or None, finish_reason=delta.finish_reason
                    )
                else:
                    chunk = protocol.completion_chunk(
                        rid, model, index, text=delta.text, finish_reason=delta.finish_reason
                    )
                yield protocol.sse(chunk)
            if request.include_usage:
                usage = protocol.usage(prompt_tokens, completion_tokens, sum(cached[:: request.n]))
                final = (
                    protocol.chat_chunk(rid, model, usage_=usage)
                    if endpoint == "chat"
                    else protocol.completion_chunk(rid, model, usage_=usage)
                )
                yield protocol.sse(final)
        except Exception as exc:  # headers are sent: report the error in the stream, as OpenAI does
            error = protocol.as_api_error(exc)
            status = error.status
            yield protocol.sse(error.body())
        finally:
            self._observe(model, endpoint, status, started)
        yield "data: [DONE]\n\n"

    # --- helpers ---------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        if self.api_key_sha256 is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = hashlib.sha256(token.strip().encode()).hexdigest()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, self.api_key_sha256):
            raise APIError(
                401, "Missing or invalid API key: send `Authorization: Bearer <key>`.", code="invalid_api_key"
            )

    def _observe(self, model: str, endpoint: str, status: int, started: float) -> None:
        self.requests_metric.inc(tags={"model": model, "endpoint": endpoint, "status": str(status)})
        if status == 200:
            self.latency_metric.observe(time.perf_counter() - started, tags={"model": model, "endpoint": endpoint})
