"""`realm rollout` with real Ray Data actors: against the Serve app with the tiny models, and against a
fault-injecting fake endpoint (retries, breaker), with a SIGKILLed driver resumed exactly once."""

import bisect
import json
import os
import re
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
import ray

from ray_apps.config import load_config
from ray_apps.rollout import RolloutError, run_rollout

from ..fake_endpoint import FakeEndpoint, rollout_overrides
from ..helpers import ROOT, alive_governors
from ..unit.test_config_extremes import CASES, _override

pytestmark = pytest.mark.integration

STOPS = {"end_marker", "max_turns", "context_budget", "assistant_length"}


def _config(tmp_path, user_url, assistant_url, *overrides, user="usergpt", assistant="baseline"):
    return load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={tmp_path}",
            f"rollout.user.base_url={user_url}",
            f"rollout.assistant.base_url={assistant_url}",
            f"rollout.user.model={user}",
            f"rollout.assistant.model={assistant}",
            "rollout.progress_interval_s=1",
            *overrides,
        ],
    )


def _outputs(out):
    sessions = [json.loads(line) for line in (out / "data/sessions.jsonl").read_text().splitlines()]
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    return sessions, failures


def _check_sessions(sessions, min_turns, given_answers=()):
    """Well-formed sessions; ``given_answers``: seed ids whose first answer came with the seed, not from the model."""
    for s in sessions:
        roles = [m["role"] for m in s["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles, roles  # alternate, user first, answered
        assert s["meta"]["user_turns"] == len(roles) // 2 >= min_turns
        stop = s["meta"]["stop_reason"]  # a simulator turn filtered max_resamples times ends the session too
        assert stop in STOPS or stop.startswith("filtered_"), stop
        generated = roles.count("assistant") - (s["meta"]["seed_id"] in given_answers)
        assert set(s["meta"]["usage"]) == {"user", "assistant"}
        assert s["meta"]["usage"]["assistant"]["completion_tokens"] > 0 or not generated, s["meta"]


def test_free_rollout_with_the_tiny_models(hf_app, tmp_path):
    cfg = _config(
        tmp_path,
        hf_app["url"],
        hf_app["url"],
        "rollout.num_sessions=16",
        "rollout.max_turns=3",
        "rollout.user.max_tokens=40",
        "rollout.assistant.max_tokens=48",
        f"rollout.user.tokenizer={hf_app['usergpt']}",
    )
    summary = run_rollout(cfg)
    out = tmp_path / "realchat"
    sessions, failures = _outputs(out)
    assert summary["seeds"] == 16 and len(sessions) + len(failures) == 16
    assert len({r["id"] for r in sessions + failures}) == 16  # every seed exactly once
    assert len(sessions) >= 8, summary
    _check_sessions(sessions, 1)
    assert all(f["reason"] and f["detail"] is not None for f in failures)
    assert pq.read_table(out / "data/sessions.parquet").column("id").to_pylist() == [s["id"] for s in sessions]
    sharegpt = [json.loads(line) for line in (out / "data/sharegpt.jsonl").read_text().splitlines()]
    assert [c["from"] for c in sharegpt[0]["conversations"]][:2] == ["human", "gpt"] and len(sharegpt) == len(sessions)
    card = (out / "README.md").read_text()
    assert f"| sessions | {len(sessions)} |" in card and "## Why sessions stopped" in card
    assert summary["usage"]["user"]["completion_tokens"] > 0 and summary["stop_reasons"]


def test_seeded_rollout_keeps_every_seed_once(hf_app, tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    lines = [
        json.dumps({"id": f"q{i}", "question": f"How do I {task} in Python?"})
        for i, task in enumerate(["sort a list", "read a file", "parse JSON", "reverse a string", "merge two dicts"])
    ]
    lines += [
        json.dumps(
            {
                "id": "qa",
                "question": "What is a closure?",
                "answer": "A function that keeps the variables of its scope.",
            }
        ),
        json.dumps({"id": "dup", "question": "How do I sort a list in Python?"}),  # the same opening as q0
        json.dumps({"id": "empty", "question": "  "}),
        "{broken json",
    ]
    seeds.write_text("\n".join(lines) + "\n")
    cfg = _config(
        tmp_path,
        hf_app["url"],
        hf_app["url"],
        "rollout.mode=seeded",
        f"rollout.seeds={seeds}",
        "rollout.max_turns=2",
        "rollout.user.max_tokens=40",
        "rollout.assistant.max_tokens=48",
    )
    summary = run_rollout(cfg)
    sessions, failures = _outputs(tmp_path / "realchat")
    by_seed = {s["meta"]["seed_id"]: s for s in sessions}
    failed = {f["seed_id"]: f for f in failures}
    assert summary["seeds"] == 9 and len(sessions) + len(failures) == 9 and not set(by_seed) & set(failed)
    assert failed["dup"]["reason"] == "duplicate_opening"
    assert failed["empty"]["reason"] == "invalid_seed" and "no question" in failed["empty"]["detail"]
    assert failed["line-9"]["reason"] == "invalid_seed" and "line 9" in failed["line-9"]["detail"]
    _check_sessions(sessions, 1, given_answers={"qa"})
    for seed_id, s in by_seed.items():
        assert s["messages"][0]["content"] == json.loads(lines[int(seed_id[1:]) if seed_id != "qa" else 5])["question"]
    if "qa" in by_seed:
        assert by_seed["qa"]["messages"][1]["content"] == "A function that keeps the variables of its scope."


def test_retries_and_failures_account_for_every_seed(ray_session, tmp_path):
    fake = FakeEndpoint(failure_rate=0.3, hang_s=2.0).start()
    try:
        cfg = _config(
            tmp_path,
            fake.url,
            fake.url,
            "rollout.num_sessions=12",
            "rollout.max_turns=3",
            "rollout.user.timeout_s=0.5",
            "rollout.assistant.timeout_s=0.5",
            "rollout.user.max_retries=3",
            "rollout.assistant.max_retries=3",
            "rollout.breaker_error_rate=0.9",
            user="fake-user",
            assistant="fake-assistant",
        )
        governors = alive_governors()
        summary = run_rollout(cfg)
    finally:
        fake.stop()
    assert alive_governors() <= governors  # the run's own governors ended with it
    sessions, failures = _outputs(tmp_path / "realchat")
    assert len(sessions) + len(failures) == 12 == len({r["id"] for r in sessions + failures})
    assert min(fake.failures.values()) > 0, fake.failures  # 429s, 500s and hangs all happened
    assert len(sessions) >= 9, summary  # retried through them
    assert {s["meta"]["stop_reason"] for s in sessions} <= {"end_marker", "max_turns"}
    assert all(f["reason"].endswith("endpoint_error") and f["detail"] for f in failures)


def test_every_request_of_a_session_carries_its_session_key(ray_session, tmp_path):
    fake = FakeEndpoint().start()
    try:
        cfg = _config(
            tmp_path, fake.url, fake.url, "rollout.num_sessions=6", user="fake-user", assistant="fake-assistant"
        )
        run_rollout(cfg)
    finally:
        fake.stop()
    sessions, failures = _outputs(tmp_path / "realchat")
    assert len(sessions) == 6 and not failures
    keys = [header for _, header in fake.sessions]
    assert None not in keys and set(keys) == {s["id"] for s in sessions}  # the session's key, on both roles' requests
    for s in sessions:  # every turn of both roles: 3 simulator turns (the last one ends it) and 2 answers
        assert sorted(m for m, key in fake.sessions if key == s["id"]) == ["fake-assistant"] * 2 + ["fake-user"] * 3


def test_circuit_breaker_stops_the_run_with_a_clear_message(ray_session, tmp_path):
    fake = FakeEndpoint(failure_rate=1.0, hang_s=1.0).start()
    try:
        cfg = _config(
            tmp_path,
            fake.url,
            fake.url,
            "rollout.num_sessions=30",
            "rollout.user.timeout_s=0.3",
            "rollout.user.max_retries=0",
            "rollout.breaker_window=6",
            "rollout.breaker_error_rate=0.5",
            user="fake-user",
            assistant="fake-assistant",
        )
        with pytest.raises(
            RolloutError,
            match=r"circuit breaker open for http://127\.0\.0\.1:\d+/v1: \d+ of the last 6 requests failed",
        ):
            run_rollout(cfg)
    finally:
        fake.stop()
    _, failures = _outputs(tmp_path / "realchat")
    assert failures and {f["reason"] for f in failures} <= {"user_endpoint_error", "circuit_open"}


def test_too_many_failed_seeds_exit_non_zero_after_writing_everything(ray_session, tmp_path, capsys):
    """An endpoint that answers without choices makes every session an internal error: the run writes every
    outcome, prints the first traceback and fails; allowing every seed to fail, the same command resumes and passes."""
    fake = FakeEndpoint().start()
    try:
        cfg = _config(
            tmp_path, fake.url, fake.url, "rollout.num_sessions=6", user="fake-broken", assistant="fake-assistant"
        )
        with pytest.raises(
            RolloutError,
            match=r"6 of 6 seeds failed \(100\.0% > rollout\.max_failure_fraction=0\.5\): internal_error 6; "
            r"every outcome is written, see .*failures\.jsonl",
        ):
            run_rollout(cfg)
        printed = capsys.readouterr().err
        assert "6 failed with internal_error" in printed and "IndexError" in printed and "Traceback" in printed
        _, failures = _outputs(tmp_path / "realchat")
        assert len(failures) == 6 and all("IndexError" in f["traceback"] for f in failures)
        again = _config(
            tmp_path,
            fake.url,
            fake.url,
            "rollout.num_sessions=6",
            "rollout.max_failure_fraction=1",
            user="fake-broken",
            assistant="fake-assistant",
        )
        assert run_rollout(again)["failure_reasons"] == {"internal_error": 6}  # an operational key: same sessions
    finally:
        fake.stop()


def test_an_unreachable_endpoint_fails_at_start_naming_it(ray_session, tmp_path):
    cfg = _config(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    with pytest.raises(RolloutError, match=r"rollout.user.base_url: cannot list models at http://127.0.0.1:9/v1"):
        run_rollout(cfg)


def test_a_killed_driver_resumes_and_keeps_every_seed_exactly_once(ray_session, tmp_path, capsys):
    fake = FakeEndpoint(delay_s=0.15).start()
    overrides = [
        f"run.workdir={tmp_path}",
        *rollout_overrides(fake.url),
        "rollout.num_sessions=48",
        "rollout.actors=1",
        "rollout.sessions_per_actor=4",
        "rollout.max_turns=2",
    ]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    driver = subprocess.Popen(
        [sys.executable, "-m", "ray_apps.cli", "rollout", "--config", str(ROOT / "configs/tiny.yaml"), *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    shards = tmp_path / "realchat" / "shards"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(list(shards.glob("*.jsonl"))) < 3:
            time.sleep(0.2)
        assert len(list(shards.glob("*.jsonl"))) >= 3, "the driver never wrote a shard"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        before = {json.loads(line)["key"] for f in shards.glob("*.jsonl") for line in f.read_text().splitlines()}
        assert 0 < len(before) < 48
        summary = run_rollout(load_config(ROOT / "configs/tiny.yaml", overrides))
    finally:
        fake.stop()
    skipped = re.search(r"(\d+) finished before", capsys.readouterr().out)
    assert skipped and int(skipped.group(1)) >= len(before)  # the rerun skipped what the killed run had finished
    sessions, failures = _outputs(tmp_path / "realchat")
    ids = [r["id"] for r in sessions + failures]
    assert summary["seeds"] == 48 and len(ids) == 48 == len(set(ids))
    assert {s["meta"]["seed_id"] for s in sessions} | {f["seed_id"] for f in failures} == {
        f"free-{i:06d}" for i in range(48)
    }


def test_a_pilot_raised_to_more_sessions_keeps_its_sessions_and_projects_the_rest(ray_session, tmp_path, capsys):
    fake = FakeEndpoint().start()
    try:

        def config(n):
            return _config(
                tmp_path, fake.url, fake.url, f"rollout.num_sessions={n}", user="fake-user", assistant="fake-assistant"
            )

        run_rollout(config(8))
        pilot = {s["id"]: s for s in _outputs(tmp_path / "realchat")[0]}
        sent = len(fake.sessions)
        estimate = run_rollout(config(16), estimate=True)
        assert len(fake.sessions) == sent  # an estimate runs nothing
        summary = run_rollout(config(16))
    finally:
        fake.stop()
    printed = capsys.readouterr().out
    assert "[rollout] projection for 8 seeds, from the 8 made" in printed
    assert "[rollout] 16 seeds: 8 finished before, 8 to run" in printed
    sessions = {s["id"]: s for s in _outputs(tmp_path / "realchat")[0]}
    assert len(sessions) == 16 and all(sessions[key] == session for key, session in pilot.items())
    assert estimate["seeds"] == summary["projection"]["seeds"] == summary["outcomes_this_run"] == 8
    assert estimate["seconds"] is not None  # at the pilot's rate
    # the fake's sessions are alike (3 simulator turns, 2 answers, 5 tokens each): the projection is exact
    for role in ("user", "assistant"):
        assert summary["projection"]["usage"][role] == {
            k: summary["this_run"]["usage"][role][k] for k in ("prompt_tokens", "completion_tokens")
        }
    assert "## This run: projected and actual" in (tmp_path / "realchat" / "README.md").read_text()


def test_progress_comes_from_the_shards_before_a_block_is_done(ray_session, tmp_path, capsys):
    """Ray Data hands a block's rows back when the whole block is done: here 4 blocks of 16 seeds (4 per actor),
    each on one seed at a time, ~13 s a block. The driver counts the shards instead, so it sees seeds sooner."""
    fake = FakeEndpoint(delay_s=0.2).start()
    try:
        cfg = _config(
            tmp_path,
            fake.url,
            fake.url,
            "rollout.num_sessions=64",
            "rollout.actors=1",
            "rollout.sessions_per_actor=4",
            "rollout.max_turns=2",
            user="fake-user",
            assistant="fake-assistant",
        )
        run_rollout(cfg)
    finally:
        fake.stop()
    done = [int(n) for n in re.findall(r"\[rollout\] (\d+)/64 done", capsys.readouterr().out)]
    assert done and done[0] < 16 and done[-1] == 64, done


def test_a_requests_per_minute_limit_holds_across_the_runs_actors(ray_session, tmp_path, capsys):
    fake = FakeEndpoint().start()
    try:
        cfg = _config(
            tmp_path,
            fake.url,
            fake.url,
            "rollout.num_sessions=12",
            "rollout.user.requests_per_minute=240",  # one request every 0.25 s, whichever of the 2 actors sends it
            user="fake-user",
            assistant="fake-assistant",
        )
        run_rollout(cfg)
    finally:
        fake.stop()
    assert (
        "[rollout.user] rate limited (requests_per_minute=240): requests at least 0.25 s apart"
        in capsys.readouterr().out
    )
    sent = sorted(t for model, t in fake.times if model == "fake-user")
    assert len(sent) == 36  # 3 simulator turns a session
    assert max(bisect.bisect_right(sent, t + 1.0) - i for i, t in enumerate(sent)) <= 5  # never more than 4/s (+1)
    assert sent[-1] - sent[0] >= 35 * 0.25 * 0.9


EXTREMES = [(key, value) for key, value in CASES if key.startswith("rollout.")]
SENT = ("temperature", "top_p", "max_tokens")  # an endpoint's keys that every request it sends carries


@pytest.fixture(scope="module")
def instant():
    fake = FakeEndpoint()
    yield fake.start()
    fake.stop()


@pytest.mark.slow  # one run per value: 7 minutes in all, left out of `make test-fast`
@pytest.mark.parametrize(("key", "value"), EXTREMES, ids=[f"{k}={v}" for k, v in EXTREMES])
def test_a_rollout_runs_with_each_extreme_accepted_value(ray_session, instant, key, value, tmp_path):
    """The unit test loads each value; here the rollout runs with it: every seed ends with an outcome written, or
    the run stops on the failures it allows or on its breaker, saying so; a sampling key reaches the requests."""
    role, leaf = key.split(".")[1], key.rsplit(".", 1)[1]
    if role == "compare_with":  # the prompted simulator's endpoint: its rollout is the pipeline's second one
        prompted = f"{{model: fake-user, base_url: '{instant.url}', {leaf}: {value}}}"
        override = f"rollout.compare_with={{user: {prompted}, personas: [You are a curious user.]}}"
    else:
        override = _override(key, value)
    # under a rate limit of a request in years, one request per endpoint: the first is sent at once
    size = 1 if leaf.endswith("_per_minute") else 2
    try:
        config = _config(
            tmp_path,
            instant.url,
            instant.url,
            f"rollout.num_sessions={size}",
            f"rollout.max_turns={size}",
            override,
            user="fake-user",
            assistant="fake-assistant",
        )
    except ValueError as exc:  # refused at load, naming the key (what the unit test checks)
        assert leaf in str(exc), exc
        return
    if role == "compare_with":
        config = config.model_copy(update={"rollout": config.rollout.prompted()})
        role = "user"
    sent = len(instant.sampling)
    try:
        run_rollout(config)
    except RolloutError as exc:
        assert "rollout.max_failure_fraction" in str(exc) or "circuit breaker" in str(exc), exc
    summary = json.loads((tmp_path / "realchat" / "summary.json").read_text())
    assert summary["sessions"] + summary["failures"] == summary["seeds"] == config.rollout.num_sessions, summary
    if leaf in SENT and summary["sessions"]:
        model = getattr(config.rollout, role).model
        carried = {r[leaf] for r in instant.sampling[sent:] if r["model"] == model}
        assert carried == {value}, carried
