"""Session-affine routing on the `hf` engine: two replicas of each tiny model behind Serve's session router
(`serve.request_router: session`) against Serve's default, power of two choices."""

import json

import openai
import pytest
from ray import serve

from ray_apps.config import load_config
from ray_apps.rollout import run_rollout
from ray_apps.serve.router import REPLICA_HEADER

from ..helpers import ROOT, free_port, start_tiny_app

pytestmark = pytest.mark.integration

TWO_REPLICAS = (
    "[{name: usergpt, path: '%s', num_cpus: 0.25, min_replicas: 2, max_replicas: 2}, "
    "{name: baseline, path: '%s', num_cpus: 0.25, min_replicas: 2, max_replicas: 2}]"
)


@pytest.fixture(scope="module")
def deploy(ray_session, usergpt, tiny_model_dir, tmp_path_factory):
    """Deploys the app with a router (the same app name and port: a redeploy replaces the replicas)."""
    serve.shutdown()  # the session's hf app (conftest): one Serve instance has one HTTP port, this app its own
    workdir, port = tmp_path_factory.mktemp("routing"), free_port()

    def start(router: str) -> dict:
        if "realm" in serve.status().applications:
            serve.delete("realm")  # new replicas: prefix caches start empty
        models = TWO_REPLICAS % (usergpt["output"], tiny_model_dir)
        return start_tiny_app(
            usergpt,
            tiny_model_dir,
            workdir,
            f"serve.port={port}",
            f"serve.models={models}",
            f"serve.request_router={router}",
        )

    yield start
    serve.shutdown()


def _sessions(url: str, tag: str, sessions: int = 8, turns: int = 3) -> dict[str, list[str]]:
    """Multi-turn sessions with the session header, each turn's prompt extending the last; the replica of each turn."""
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    replicas = {}
    for s in range(sessions):
        key, messages = f"{tag}-{s}", [{"role": "user", "content": f"Session {tag} {s}: how do I sort a list?"}]
        for turn in range(turns):
            raw = client.chat.completions.with_raw_response.create(
                model="baseline", messages=messages, max_tokens=8, temperature=1.0, extra_headers={"x-session-id": key}
            )
            replicas.setdefault(key, []).append(raw.headers[REPLICA_HEADER])
            messages += [raw.parse().choices[0].message.model_dump(include={"role", "content"})]
            messages += [{"role": "user", "content": f"And step {turn + 2}?"}]
    return replicas


def _rollout(app: dict, workdir) -> dict:
    config = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={workdir}",
            f"serve.port={app['port']}",
            "rollout.num_sessions=16",
            "rollout.max_turns=3",
            "rollout.user.max_tokens=24",
            "rollout.assistant.max_tokens=24",
            f"rollout.user.tokenizer={app['usergpt']}",
        ],
    )
    return run_rollout(config)


def test_the_session_router_keeps_every_turn_of_a_session_on_one_replica(deploy, tmp_path):
    app = deploy("session")
    replicas = _sessions(app["url"], "a")
    assert all(len(set(turns)) == 1 for turns in replicas.values()), replicas
    assert len({turns[0] for turns in replicas.values()}) == 2  # and sessions are spread over both replicas
    affine = _rollout(app, tmp_path / "session")["prefix_cache_hit_rate"]

    app = deploy("power_of_two")
    replicas = _sessions(app["url"], "b")
    assert any(len(set(turns)) == 2 for turns in replicas.values()), replicas  # the default moves sessions around
    default = _rollout(app, tmp_path / "power_of_two")["prefix_cache_hit_rate"]
    # The same rollout: with affinity a turn finds its history in its replica's prefix cache more often.
    assert affine["user"] > default["user"] and affine["assistant"] > default["assistant"], (affine, default)
    print(json.dumps({"session": affine, "power_of_two": default}))
