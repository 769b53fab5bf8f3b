"""A fault-injecting OpenAI-compatible endpoint on loopback (an external service, so a fake is fine).

`fake-user` asks numbered questions and ends after `turns` questions with the end marker;
`fake-assistant` answers, `fake-broken` answers without choices. A share of chat requests
(`failure_rate`, deterministic) fails in turn with 429 + Retry-After, 500, or a hang longer than the
client's timeout.

`python -m tests.fake_endpoint --port N [--turns 3]` serves an instant one in a process of its own (benchmarks).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import threading
import time

from aiohttp import web

from ray_apps.conversation import END_OF_CONVERSATION


def chat_response(n: int, model: str, text: str) -> web.Response:
    """A chat completion as an OpenAI-compatible server answers it."""
    return web.json_response(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    )


def malformed_response(n: int, model: str) -> web.Response:
    """A 200 answer without choices: no client code expects it, so the item it answers is an internal error."""
    return web.json_response(
        {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": model, "choices": []}
    )


def rollout_overrides(url: str) -> list[str]:
    """Config overrides that point both roles of a rollout at a fake endpoint at ``url``."""
    return [
        f"rollout.user.base_url={url}",
        f"rollout.assistant.base_url={url}",
        "rollout.user.model=fake-user",
        "rollout.assistant.model=fake-assistant",
    ]


class FakeEndpoint:
    def __init__(
        self, failure_rate: float = 0.0, hang_s: float = 3.0, delay_s: float = 0.0, turns: int = 2, record: bool = True
    ):
        self.failure_rate, self.hang_s, self.delay_s, self.turns = failure_rate, hang_s, delay_s, turns
        self.counter = itertools.count()
        self.failures = {"429": 0, "500": 0, "hang": 0}
        self.port, self.record = None, record
        self.sessions: list[tuple[str, str | None]] = []  # (model, x-session-id header) of each chat request
        self.times: list[tuple[str, float]] = []  # (model, monotonic time) of each chat request
        self.sampling: list[dict] = []  # model, temperature, top_p and max_tokens of each chat request
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _models(self, _):
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": m, "object": "model"} for m in ("fake-user", "fake-assistant", "fake-broken")],
            }
        )

    async def _chat(self, request):
        n = next(self.counter)
        body = await request.json()
        if self.record:
            self.sessions.append((body["model"], request.headers.get("x-session-id")))
            self.times.append((body["model"], time.monotonic()))
            self.sampling.append({k: body.get(k) for k in ("model", "temperature", "top_p", "max_tokens")})
        if (n * 37) % 100 < self.failure_rate * 100:  # deterministic, spread over the request sequence
            mode = ("429", "500", "hang")[n % 3]
            self.failures[mode] += 1
            if mode == "429":
                return web.json_response(
                    {"error": {"message": "slow down", "type": "rate_limit"}}, status=429, headers={"Retry-After": "0"}
                )
            if mode == "500":
                return web.json_response({"error": {"message": "boom", "type": "server_error"}}, status=500)
            await asyncio.sleep(self.hang_s)
        if body["model"] == "fake-broken":
            return malformed_response(n, body["model"])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        asked = sum(m["role"] == "assistant" for m in body["messages"])  # in the simulator's view, its own turns
        if body["model"] == "fake-user":
            text = END_OF_CONVERSATION if asked >= self.turns else f"How does step {asked + 1} of plan {n} work?"
        else:
            text = f"Step by step answer number {n}."
        return chat_response(n, body["model"], text)

    def start(self, port: int = 0) -> FakeEndpoint:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)

        async def serve():
            self._runner = runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            self.port = runner.addresses[0][1]
            self._started.set()

        threading.Thread(
            target=lambda: (self._loop.run_until_complete(serve()), self._loop.run_forever()), daemon=True
        ).start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="an instant fake OpenAI-compatible endpoint")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    FakeEndpoint(turns=args.turns, record=False).start(args.port)
    print(f"serving on {args.port}", flush=True)
    threading.Event().wait()
