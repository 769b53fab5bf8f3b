"""A scripted OpenAI-compatible judge (and answerer) on loopback: an external service, so a fake is fine.

The judge reads the answers in its prompt: GOOD scores [[9]] (and wins a pair), BAD scores [3] (the
backup pattern), anything else [[5]] (a pair without a GOOD on one side is [[C]]). FLAKY gets an
unparseable verdict the first time a prompt is seen, NEVER every time, and BIAS makes a pairwise
judge always answer [[A]] (position bias). `answerer` echoes the question it was asked; `broken`
answers without choices.
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from .fake_endpoint import FakeEndpoint, chat_response, malformed_response


def verdict(prompt: str, seen: int) -> str:
    if "NEVER" in prompt or ("FLAKY" in prompt and seen == 0):
        return "I cannot decide."
    if "The Start of Assistant B" in prompt:  # pairwise: A's answers come first, then B's
        if "BIAS" in prompt:
            return "Assistant A, clearly. [[A]]"
        a, b = prompt.split("The Start of Assistant B", 1)
        if ("GOOD" in a) != ("GOOD" in b):
            return "Verdict: [[A]]" if "GOOD" in a else "Verdict: [[B]]"
        return "Equally good. [[C]]"
    if "GOOD" in prompt:
        return "Rating: [[9]]"
    return "Rating: [3]" if "BAD" in prompt else "Rating: [[5]]"


class FakeJudge(FakeEndpoint):
    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.seen: Counter[str] = Counter()

    async def _models(self, _):
        return web.json_response(
            {"object": "list", "data": [{"id": m, "object": "model"} for m in ("judge", "answerer", "broken")]}
        )

    async def _chat(self, request):
        body = await request.json()
        self.requests.append(body)
        prompt = body["messages"][-1]["content"]
        if body["model"] == "broken":
            return malformed_response(len(self.requests), body["model"])
        if body["model"] == "judge":
            text = verdict(prompt, self.seen[prompt])
            self.seen[prompt] += 1
        else:
            text = f"Answer to: {prompt[:40]}"
        return chat_response(len(self.requests), body["model"], text)
