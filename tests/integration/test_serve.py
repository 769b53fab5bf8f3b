"""`realm serve` on a real local Ray Serve, spoken to with the official `openai` client (sync and async)."""

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request

import openai
import pytest
import yaml
from ray import serve
from ray.serve.schema import ServeDeploySchema

from ray_apps.cli import main
from ray_apps.config import load_config
from ray_apps.conversation import END_OF_CONVERSATION, simulator_view
from ray_apps.eval import run_answers
from ray_apps.eval.fastchat import load_answers, load_questions
from ray_apps.models import load_tokenizer
from ray_apps.serve import app_builder, start_serve, stop_serve

from ..helpers import REQUEST, ROOT, prepared_records

pytestmark = pytest.mark.integration


@pytest.fixture
def client(hf_app):
    return openai.OpenAI(base_url=hf_app["url"], api_key="unused", max_retries=0)


def _stats(model: str, app_name: str = "realm") -> dict:
    return serve.get_deployment_handle(f"model-{model}", app_name=app_name).stats.remote().result()


def _prompt_tokens(path: str, messages: list[dict]) -> int:
    tokenizer = load_tokenizer(path)
    return len(
        tokenizer(
            tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False),
            add_special_tokens=False,
        ).input_ids
    )


def test_models_are_listed_and_chat_completions_report_usage(client, hf_app):
    with urllib.request.urlopen(hf_app["url"].replace("/v1", "/health")) as health:
        assert json.load(health) == {"status": "ok", "models": ["baseline", "usergpt"]}
    assert sorted(m.id for m in client.models.list()) == ["baseline", "usergpt"]
    messages = [{"role": "user", "content": "How do I reverse a list in Python?"}]
    r = client.chat.completions.create(model="baseline", messages=messages, max_tokens=12, temperature=0)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == "baseline" and choice.message.role == "assistant"
    assert r.usage.prompt_tokens == _prompt_tokens(hf_app["baseline"], messages)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length") and 1 <= r.usage.completion_tokens <= 12
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 12


def test_streaming_gives_the_same_completion_in_pieces(hf_app):
    async def run():
        client = openai.AsyncOpenAI(base_url=hf_app["url"], api_key="unused", max_retries=0)
        messages = [
            {
                "role": "user",
                "content": "Tell me about the history of Rome, from its founding to the fall of the empire.",
            }
        ]
        whole = await client.chat.completions.create(model="baseline", messages=messages, max_tokens=150, temperature=0)
        stream = await client.chat.completions.create(
            model="baseline",
            messages=messages,
            max_tokens=150,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
        return whole, chunks

    whole, chunks = asyncio.run(run())
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(content) == whole.choices[0].message.content
    assert finishes == [whole.choices[0].finish_reason]
    streamed = chunks[-1].usage  # usage comes last, when asked for
    assert chunks[-1].choices == [] and streamed.model_dump(
        exclude={"prompt_tokens_details"}
    ) == whole.usage.model_dump(exclude={"prompt_tokens_details"})
    # The same prompt again: its tokens come from the prefix cache, and the usage says so.
    assert 0 < streamed.prompt_tokens_details.cached_tokens <= streamed.prompt_tokens
    assert whole.usage.completion_tokens < 40 or len(content) >= 2  # a long answer arrives in several pieces


def test_n_seed_and_stop(client):
    messages = [{"role": "user", "content": "Give me three ideas for a birthday party."}]
    first = client.chat.completions.create(
        model="baseline", messages=messages, max_tokens=16, temperature=1.0, n=3, seed=11
    )
    again = client.chat.completions.create(
        model="baseline", messages=messages, max_tokens=16, temperature=1.0, n=3, seed=11
    )
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert texts == [c.message.content for c in again.choices]  # seeded: reproducible
    assert len(set(texts)) > 1  # each choice samples its own continuation
    assert 3 <= first.usage.completion_tokens <= 3 * 16  # counted over all choices

    full = (
        client.chat.completions.create(model="baseline", messages=messages, max_tokens=40, temperature=0)
        .choices[0]
        .message.content
    )
    stop = full[10:13]
    cut = client.chat.completions.create(model="baseline", messages=messages, max_tokens=40, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_completions_endpoint_with_several_prompts(client, hf_app):
    prompts = ["The quick brown fox", "Once upon a time"]
    r = client.completions.create(model="baseline", prompt=prompts, max_tokens=5, n=2, temperature=0)
    assert r.object == "text_completion" and [c.index for c in r.choices] == [0, 1, 2, 3]
    # greedy: n copies per prompt
    assert r.choices[0].text == r.choices[1].text and r.choices[2].text == r.choices[3].text
    tokenizer = load_tokenizer(hf_app["baseline"])
    assert r.usage.prompt_tokens == sum(len(tokenizer(p).input_ids) for p in prompts)
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)


def _raw_post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_bad_requests_get_openai_errors_and_the_app_stays_healthy(client, hf_app):
    user = [{"role": "user", "content": "hi"}]
    cases = [
        (openai.NotFoundError, dict(model="gpt-99", messages=user), "model", "model_not_found"),
        (openai.BadRequestError, dict(model="baseline", messages=[]), "messages", "invalid_value"),
        (
            openai.BadRequestError,
            dict(model="baseline", messages=[{"role": "user", "content": "word " * 3000}]),
            "messages",
            "context_length_exceeded",
        ),
        (
            openai.BadRequestError,
            dict(model="baseline", messages=user, max_tokens=100_000),
            "max_tokens",
            "context_length_exceeded",
        ),
        (openai.BadRequestError, dict(model="baseline", messages=user, temperature=3), "temperature", "invalid_value"),
        (openai.BadRequestError, dict(model="baseline", messages=user, top_p=1.5), "top_p", "invalid_value"),
        (openai.BadRequestError, dict(model="baseline", messages=user, n=0), "n", "invalid_value"),
    ]
    for error, request, param, code in cases:
        with pytest.raises(error) as err:
            client.chat.completions.create(**request)
        assert 400 <= err.value.status_code < 500
        assert (err.value.body["param"], err.value.body["code"]) == (param, code) and err.value.body["message"]
    status, body = _raw_post(hf_app["url"] + "/chat/completions", b'{"model": "baseline", "messages": [')
    assert (
        status == 400 and body["error"]["code"] == "invalid_json" and body["error"]["type"] == "invalid_request_error"
    )
    status, body = _raw_post(hf_app["url"].replace("/v1", "/v2/nothing"), b"{}")
    assert status == 404 and "error" in body

    assert client.chat.completions.create(model="baseline", messages=user, max_tokens=2).choices[0].message is not None
    assert serve.status().applications["realm"].status == "RUNNING"


def test_64_concurrent_requests_all_succeed_in_shared_batches(hf_app):
    async def run():
        client = openai.AsyncOpenAI(base_url=hf_app["url"], api_key="unused", max_retries=0, timeout=300)
        requests = [
            client.chat.completions.create(
                model="baseline", messages=[{"role": "user", "content": f"Question number {i}?"}], max_tokens=24
            )
            for i in range(64)
        ]
        results = await asyncio.gather(*requests)
        await client.close()
        return results

    before = _stats("baseline")["batch_sizes"]
    results = asyncio.run(run())
    assert len(results) == 64 and all(r.choices[0].finish_reason in ("stop", "length") for r in results)
    after = _stats("baseline")["batch_sizes"]
    new_steps = {size: after[size] - before.get(size, 0) for size in after if after[size] > before.get(size, 0)}
    assert max(new_steps) >= 16, new_steps  # many callers were decoded in the same forward passes


def test_user_simulator_turns_are_chat_completions_on_the_swapped_conversation(client, prepared_sample):
    # Free mode: the first question is a completion of the simulator's system prompt alone.
    openings = client.chat.completions.create(
        model="usergpt", messages=simulator_view([]), max_tokens=40, temperature=1.0, top_p=0.9, n=8, seed=1
    )
    asked = [c.message.content.strip() for c in openings.choices]
    assert sum(bool(REQUEST.search(t)) for t in asked) >= 5, asked
    # Follow-ups: the conversation so far, role-swapped; the simulator answers as the user would.
    turns = []
    for i, record in enumerate(prepared_records(prepared_sample, "eval")[:12]):
        view = simulator_view(record["messages"])
        first_answer = next(j for j, m in enumerate(view) if m["role"] == "user")
        r = client.chat.completions.create(
            model="usergpt", messages=view[: first_answer + 1], max_tokens=40, temperature=0.7, seed=i
        )
        turns.append(r.choices[0].message.content.strip())
    followups = [t for t in turns if t and not t.startswith(END_OF_CONVERSATION)]
    assert len(followups) >= 5 and sum(bool(REQUEST.search(t)) for t in followups) >= 0.6 * len(followups), turns


def test_mt_bench_answers_from_the_serve_app(hf_app, benchmarks_dir, tmp_path):
    questions = benchmarks_dir / "mt_bench" / "question.jsonl"
    config = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={tmp_path}",
            f"serve.port={hf_app['port']}",
            f"eval.benchmarks=[{{name: mt_bench, questions: '{questions}'}}]",
            "eval.answer.model=baseline",
            "eval.answer.max_tokens=8",
        ],
    )
    counts = run_answers(config)["mt_bench"]
    answers = load_answers(tmp_path / "eval" / "mt_bench" / "model_answer" / "baseline.jsonl")
    asked = len(load_questions(questions))  # MT-Bench's 80 (FastChat's files) or the fixtures' 16
    assert counts == {"done": asked, "failed": 0, "answered_before": 0} and len(answers) == asked
    assert all(len(a["choices"][0]["turns"]) == 2 and a["model_id"] == "baseline" for a in answers.values())


def test_bearer_token_auth(hf_app, monkeypatch):
    monkeypatch.setenv("REALM_TEST_KEY", "s3cret-token")
    cfg = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"serve.port={hf_app['port']}",
            "serve.app_name=auth",
            "serve.route_prefix=/auth",
            "serve.api_key_env=REALM_TEST_KEY",
            f"serve.models=[{{name: baseline, path: '{hf_app['baseline']}', num_cpus: 0.1}}]",
        ],
    )
    url = start_serve(cfg)
    assert url.endswith("/auth/v1")
    with pytest.raises(urllib.error.HTTPError) as no_token:
        urllib.request.urlopen(url + "/models")
    assert no_token.value.code == 401 and json.load(no_token.value)["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as wrong:
        openai.OpenAI(base_url=url, api_key="wrong-token", max_retries=0).models.list()
    assert wrong.value.status_code == 401 and wrong.value.body["code"] == "invalid_api_key"
    good = openai.OpenAI(base_url=url, api_key="s3cret-token", max_retries=0)
    assert [m.id for m in good.models.list()] == ["baseline"]
    assert (
        good.chat.completions.create(
            model="baseline", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        ).usage.completion_tokens
        >= 1
    )
    serve.delete("auth")


def test_a_crashed_replica_is_restarted_and_the_app_recovers(client):
    pid = _stats("baseline")["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline, answered = time.time() + 120, None
    while time.time() < deadline and answered is None:
        try:
            answered = client.chat.completions.create(
                model="baseline", messages=[{"role": "user", "content": "still there?"}], max_tokens=4
            )
        except openai.APIStatusError as err:
            assert err.status_code == 503, err  # while it restarts: a retryable error, never a 500
            time.sleep(1)
        except openai.APIConnectionError:
            time.sleep(1)
    assert answered is not None and answered.choices[0].finish_reason in ("stop", "length")
    assert _stats("baseline")["pid"] != pid
    assert serve.status().applications["realm"].status == "RUNNING"


@serve.deployment(graceful_shutdown_timeout_s=60, ray_actor_options={"num_cpus": 0})
class SlowToStop:
    """A replica that needs 14 s to finish when stopped, like one draining long requests on a busy node."""

    def __del__(self):
        time.sleep(14)

    def __call__(self, request) -> str:
        return "ok"


def test_stopping_an_app_waits_for_replicas_that_take_long_to_finish(hf_app, capsys):
    cfg = load_config(ROOT / "configs/tiny.yaml", ["serve.app_name=slow", "serve.graceful_shutdown_timeout_s=60"])
    serve.run(SlowToStop.bind(), name="slow", route_prefix="/slow")
    with pytest.raises(TimeoutError, match=r"app 'slow' is still stopping after \ds .*graceful_shutdown_timeout_s=60s"):
        stop_serve(cfg, patience_s=2)
    started = time.monotonic()
    stop_serve(cfg, tag="test")  # the same app, still stopping: waited for until it is gone, and said so
    assert time.monotonic() - started >= 10 and "slow" not in serve.status().applications
    assert "[test] waiting for app slow to stop" in capsys.readouterr().out


def test_serve_config_file_and_cli_deploy_the_same_app(hf_app, tmp_path):
    spec = yaml.safe_load((ROOT / "configs/serve/tiny.yaml").read_text())
    ServeDeploySchema.model_validate(spec)  # a valid `serve run` / `serve deploy` file
    [application] = spec["applications"]
    assert application["import_path"] == "ray_apps.serve:app_builder"
    one_model = f"serve.models=[{{name: baseline, path: '{hf_app['baseline']}', num_cpus: 0.1}}]"
    args = {**application["args"], "config": str(ROOT / application["args"]["config"]), "overrides": [one_model]}
    serve.run(app_builder(args), name="fromfile", route_prefix="/fromfile")
    listed = openai.OpenAI(
        base_url=f"http://127.0.0.1:{hf_app['port']}/fromfile/v1", api_key="x", max_retries=0
    ).models.list()
    assert [m.id for m in listed] == ["baseline"]
    serve.delete("fromfile")

    code = main(
        [
            "serve",
            "--config",
            str(ROOT / "configs/tiny.yaml"),
            "--detach",
            one_model,
            "serve.app_name=cli",
            "serve.route_prefix=/cli",
            f"serve.port={hf_app['port']}",
            f"run.workdir={tmp_path}",
        ]
    )
    assert code == 0
    listed = openai.OpenAI(
        base_url=f"http://127.0.0.1:{hf_app['port']}/cli/v1", api_key="x", max_retries=0
    ).models.list()
    assert [m.id for m in listed] == ["baseline"]
    serve.delete("cli")


def test_cli_names_a_missing_model(tmp_path, capsys):
    code = main(["serve", "--config", str(ROOT / "configs/tiny.yaml"), f"run.workdir={tmp_path}"])
    assert code == 2
    assert "serve.models[0].path" in capsys.readouterr().err
