"""The OpenAI HTTP protocol: request schemas, OpenAI-style errors, response objects.

Responses are built from the ``openai`` package's own types, so what we send is what the
official client parses. Requests are validated here, before any model work, so a bad request
becomes a 4xx with an OpenAI error body and never reaches a replica.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any, Literal

from openai.types import Completion, CompletionChoice, CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice as ChatChoice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ray.exceptions import RayActorError
from starlette.requests import ClientDisconnect

logger = logging.getLogger("ray.serve")


class APIError(Exception):
    """An error answered with an OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


#: OpenAI parameters the hf engine does not implement: a request that sets them gets a 400, not a silent default.
_UNSUPPORTED = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "tools": (None, []),
    "functions": (None, []),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "best_of": (None, 1),
    "echo": (None, False),
    "suffix": (None, ""),
}


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stop: str | list[str] | None = Field(None, validate_default=True)
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    skip_special_tokens: bool = Field(True, description="vLLM extension: drop special tokens from the text.")
    logit_bias: dict[int, float] | None = Field(
        None,
        validate_default=True,
        description="Token id -> bias (-100 to 100) added to its logit before sampling (100 forces it).",
    )

    @field_validator("logit_bias")
    @classmethod
    def _biases(cls, value: dict[int, float] | None) -> dict[int, float]:
        value = value or {}
        if any(not -100 <= bias <= 100 for bias in value.values()):
            raise ValueError("logit_bias values must be between -100 and 100")
        return value

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> list[str]:
        stops = [value] if isinstance(value, str) else list(value or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("up to 4 non-empty stop strings")
        return stops

    def check_supported(self) -> None:
        for name, value in (self.model_extra or {}).items():
            if name in _UNSUPPORTED and value not in _UNSUPPORTED[name]:
                raise APIError(400, f"{name} is not supported by this server", param=name, code="unsupported_parameter")

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(
                    400, "only text content parts are supported", param="messages", code="unsupported_content"
                )
            parts.append(part["text"])
        return "".join(parts)


class ChatRequest(_Request):
    messages: list[_Message] = Field(..., min_length=1)

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(_Request):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # the OpenAI default for completions

    @field_validator("prompt")
    @classmethod
    def _prompts(cls, value: str | list[str]) -> list[str]:
        prompts = [value] if isinstance(value, str) else value
        if not prompts:
            raise ValueError("at least one prompt")
        return prompts


def parse_request(raw: bytes, schema: type[_Request]) -> _Request:
    """JSON bytes to a validated request, or an ``APIError`` naming the bad parameter."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object", code="invalid_json")
    try:
        request = schema.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"]) or None
        raise APIError(400, f"{param}: {err['msg']}", param=param, code="invalid_value") from None
    request.check_supported()
    return request


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details={"cached_tokens": cached_tokens},
    )


def chat_completion(
    id: str, model: str, texts: list[str], finishes: list[str], usage_: CompletionUsage
) -> ChatCompletion:
    choices = [
        ChatChoice(index=i, message=ChatCompletionMessage(role="assistant", content=t), finish_reason=f)
        for i, (t, f) in enumerate(zip(texts, finishes))
    ]
    return ChatCompletion(
        id=id,
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=usage_,
    )


def chat_chunk(
    id: str,
    model: str,
    index: int | None = None,
    *,
    role: str | None = None,
    content: str | None = None,
    finish_reason: str | None = None,
    usage_: CompletionUsage | None = None,
) -> ChatCompletionChunk:
    choices = (
        []
        if index is None
        else [ChunkChoice(index=index, delta=ChoiceDelta(role=role, content=content), finish_reason=finish_reason)]
    )
    return ChatCompletionChunk(
        id=id, object="chat.completion.chunk", created=int(time.time()), model=model, choices=choices, usage=usage_
    )


def completion(id: str, model: str, texts: list[str], finishes: list[str], usage_: CompletionUsage) -> Completion:
    choices = [CompletionChoice(index=i, text=t, finish_reason=f) for i, (t, f) in enumerate(zip(texts, finishes))]
    return Completion(
        id=id,
        object="text_completion",
        created=int(time.time()),
        model=model,
        choices=choices,
        usage=usage_,
    )


def completion_chunk(
    id: str,
    model: str,
    index: int | None = None,
    *,
    text: str = "",
    finish_reason: str | None = None,
    usage_: CompletionUsage | None = None,
) -> dict:
    """A streamed completion chunk (a dict: the ``openai`` type has no null ``finish_reason`` mid-stream)."""
    choices = (
        [] if index is None else [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": None}]
    )
    return {
        "id": id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_.model_dump() if usage_ else None,
    }


def sse(payload: BaseModel | dict | str) -> str:
    """One server-sent event line as the OpenAI streaming API sends it."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump_json(exclude_unset=False)
    elif isinstance(payload, dict):
        payload = json.dumps(payload)
    return f"data: {payload}\n\n"


def as_api_error(exc: Exception) -> APIError:
    """Any failure as an OpenAI error: ours as they are, a restarting replica as 503, a client that went away
    before its request was read as 499 (nginx's "client closed request": nobody reads the answer, nothing is
    logged), the rest as 500 with the traceback logged."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ClientDisconnect):  # e.g. a rollout driver stopped with `ray job stop`
        return APIError(499, "The client closed the request.", type="client_error", code="client_closed_request")
    if isinstance(exc, RayActorError):
        return APIError(
            503, "The model replica is restarting; retry shortly.", type="server_error", code="replica_unavailable"
        )
    logger.exception("request failed")
    return APIError(500, f"Internal error: {type(exc).__name__}: {exc}", type="server_error", code="internal_error")
