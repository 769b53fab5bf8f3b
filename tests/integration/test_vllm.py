"""`serve.engine: vllm`: vLLM's CPU build through ray.serve.llm on the real local Ray, serving the tiny UserGPT and
baseline; spoken to with the official `openai` client, by the rollout and by benchmark answers. One deployment for
the module (a vLLM replica takes about a minute to start here)."""

import asyncio
import json

import openai
import pytest
from ray import serve

from ray_apps.config import load_config
from ray_apps.conversation import END_OF_CONVERSATION, simulator_view
from ray_apps.endpoints import resolve_endpoint
from ray_apps.eval import run_answers
from ray_apps.eval.fastchat import load_answers, load_questions
from ray_apps.models import load_tokenizer
from ray_apps.rollout import run_rollout

from ..helpers import REQUEST, ROOT, prepared_records, start_tiny_app

pytestmark = pytest.mark.integration

STOPS = {"end_marker", "max_turns", "context_budget", "assistant_length"}


@pytest.fixture(scope="module")
def app(ray_session, usergpt, tiny_model_dir, tmp_path_factory):
    serve.shutdown()  # the session's hf app (conftest): one Serve instance has one HTTP port, this app its own
    # blocks of 32 tokens, not the CPU backend's 128: the tiny sessions' histories are often shorter than 128 tokens,
    # and vLLM reuses only whole blocks, so with 128 whether a rollout shows any prefix-cache reuse is chance
    workdir = tmp_path_factory.mktemp("vllm-serve")
    yield start_tiny_app(usergpt, tiny_model_dir, workdir, "serve.engine=vllm", "serve.engine_kwargs={block_size: 32}")
    serve.shutdown()


@pytest.fixture
def client(app):
    return openai.OpenAI(base_url=app["url"], api_key="unused", max_retries=0)


def _config(app, tmp_path, *overrides):
    """The tiny config pointed at the module's app the way a user runs it: null base_urls, engine vllm."""
    return load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={tmp_path}",
            f"serve.port={app['port']}",
            "serve.engine=vllm",
            f"rollout.user.tokenizer={app['usergpt']}",
            "rollout.progress_interval_s=1",
            *overrides,
        ],
    )


def test_chat_completions_stream_and_the_end_marker_survives(client, app):
    assert sorted(m.id for m in client.models.list()) == ["baseline", "usergpt"]
    messages = [{"role": "user", "content": "Tell me about the history of Rome."}]
    whole = client.chat.completions.create(model="baseline", messages=messages, max_tokens=40, temperature=0)
    assert whole.choices[0].message.role == "assistant" and 1 <= whole.usage.completion_tokens <= 40
    assert whole.usage.prompt_tokens_details is not None  # the prefix-cache reuse the rollout sums

    async def stream():
        async_client = openai.AsyncOpenAI(base_url=app["url"], api_key="unused", max_retries=0)
        response = await async_client.chat.completions.create(
            model="baseline", messages=messages, max_tokens=40, temperature=0, stream=True
        )
        chunks = [chunk async for chunk in response]
        await async_client.close()
        return chunks

    chunks = asyncio.run(stream())
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(content) == whole.choices[0].message.content and len(content) >= 2  # SSE, in pieces
    # The end marker is an ordinary added token: it comes back as text (skip_special_tokens keeps it).
    marker = load_tokenizer(app["usergpt"]).convert_tokens_to_ids(END_OF_CONVERSATION)
    ended = client.chat.completions.create(
        model="usergpt",
        messages=simulator_view([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]),
        max_tokens=2,
        temperature=0,
        logit_bias={str(marker): 100},
    )
    assert ended.choices[0].message.content.startswith(END_OF_CONVERSATION)


def test_the_simulator_asks_the_next_turn_on_the_swapped_conversation(client, prepared_sample):
    turns = []  # sampled, unseeded: four samples of each conversation's next user turn
    for record in prepared_records(prepared_sample, "eval")[:12]:
        view = simulator_view(record["messages"])
        first_answer = next(j for j, m in enumerate(view) if m["role"] == "user")
        r = client.chat.completions.create(
            model="usergpt", messages=view[: first_answer + 1], max_tokens=40, temperature=0.7, n=4
        )
        turns += [c.message.content.strip() for c in r.choices]
    followups = [t for t in turns if t and not t.startswith(END_OF_CONVERSATION)]
    assert len(followups) >= 12 and sum(bool(REQUEST.search(t)) for t in followups) >= 0.6 * len(followups), turns


def test_free_and_seeded_rollouts_without_seeds_keep_every_seed_once(app, tmp_path, capsys):
    config = _config(app, tmp_path / "free", "rollout.num_sessions=12", "rollout.max_turns=3")
    assert resolve_endpoint(config, config.rollout.user, "rollout.user").send_seed is False
    summary = run_rollout(config)
    assert "no sampling seeds: vLLM's CPU engine fails on seeded requests" in capsys.readouterr().out
    sessions = [json.loads(line) for line in (tmp_path / "free/realchat/data/sessions.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (tmp_path / "free/realchat/failures.jsonl").read_text().splitlines()]
    assert len(sessions) + len(failures) == 12 == len({r["id"] for r in sessions + failures})
    assert len(sessions) >= 8 and not summary["failure_reasons"].get("user_endpoint_error"), summary
    assert all(s["meta"]["stop_reason"] in STOPS or s["meta"]["stop_reason"].startswith("filtered_") for s in sessions)
    assert summary["prefix_cache_hit_rate"]["assistant"] > 0  # later turns reuse the cached history

    seeds = tmp_path / "seeds.jsonl"
    tasks = ["sort a list", "read a file", "parse JSON", "reverse a string", "merge two dicts"]
    seeds.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"How do I {t}?"}) + "\n" for i, t in enumerate(tasks))
    )
    config = _config(app, tmp_path / "seeded", "rollout.mode=seeded", f"rollout.seeds={seeds}", "rollout.max_turns=2")
    summary = run_rollout(config)
    sessions = [
        json.loads(line) for line in (tmp_path / "seeded/realchat/data/sessions.jsonl").read_text().splitlines()
    ]
    failures = [json.loads(line) for line in (tmp_path / "seeded/realchat/failures.jsonl").read_text().splitlines()]
    ran = [r["meta"]["seed_id"] for r in sessions] + [r["seed_id"] for r in failures]
    assert sorted(ran) == [f"q{i}" for i in range(5)]  # every seed once
    assert len(sessions) >= 4, summary
    for s in sessions:
        assert s["messages"][0]["content"] == f"How do I {tasks[int(s['meta']['seed_id'][1:])]}?"


def test_mt_bench_answers_through_vllm(app, benchmarks_dir, tmp_path):
    questions = benchmarks_dir / "mt_bench" / "question.jsonl"
    config = _config(
        app,
        tmp_path,
        f"eval.benchmarks=[{{name: mt_bench, questions: '{questions}'}}]",
        "eval.answer.model=baseline",
        "eval.answer.max_tokens=8",
    )
    counts = run_answers(config)["mt_bench"]
    answers = load_answers(tmp_path / "eval" / "mt_bench" / "model_answer" / "baseline.jsonl")
    asked = len(load_questions(questions))  # MT-Bench's 80 (FastChat's files) or the fixtures' 16
    assert counts == {"done": asked, "failed": 0, "answered_before": 0} and len(answers) == asked
    assert all(len(a["choices"][0]["turns"]) == 2 and a["model_id"] == "baseline" for a in answers.values())
