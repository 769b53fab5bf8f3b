"""The OpenAI protocol layer and the serve config, without Ray."""

import json
import logging
import subprocess
import sys

import pytest
import yaml
from ray.exceptions import RayActorError
from starlette.requests import ClientDisconnect

from ray_apps.config import ConfigError, load_config
from ray_apps.serve import app_builder, model_paths
from ray_apps.serve.protocol import APIError, ChatRequest, CompletionRequest, as_api_error, parse_request
from ray_apps.serve.vllm import llm_config

from ..helpers import ROOT


def _chat(**fields):
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}).encode()


@pytest.mark.parametrize(
    "body, param, code",
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (json.dumps({"model": "m", "messages": []}).encode(), "messages", "invalid_value"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model", "invalid_value"),
        (
            json.dumps({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            "messages.0.role",
            "invalid_value",
        ),
        (_chat(temperature=2.5), "temperature", "invalid_value"),
        (_chat(top_p=0), "top_p", "invalid_value"),
        (_chat(n=0), "n", "invalid_value"),
        (_chat(max_tokens=0), "max_tokens", "invalid_value"),
        (_chat(stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
        (_chat(logprobs=True), "logprobs", "unsupported_parameter"),
        (_chat(presence_penalty=0.5), "presence_penalty", "unsupported_parameter"),
        (_chat(logit_bias={"5": 101}), "logit_bias", "invalid_value"),
        (_chat(logit_bias={"a token": 1}), "logit_bias.a token.[key]", "invalid_value"),
    ],
)
def test_bad_requests_become_openai_errors_naming_the_parameter(body, param, code):
    with pytest.raises(APIError) as err:
        parse_request(body, ChatRequest)
    assert err.value.status == 400
    assert err.value.body()["error"] == {
        "message": err.value.message,
        "type": "invalid_request_error",
        "param": param,
        "code": code,
    }


def test_good_requests_get_openai_defaults():
    chat = parse_request(
        _chat(stop="END", stream=True, stream_options={"include_usage": True}, user="u1", logprobs=False), ChatRequest
    )
    assert chat.logit_bias == {} and parse_request(_chat(logit_bias={"7": -5}), ChatRequest).logit_bias == {7: -5.0}
    assert (chat.stop, chat.n, chat.temperature, chat.top_p, chat.max_tokens, chat.include_usage) == (
        ["END"],
        1,
        1.0,
        1.0,
        None,
        True,
    )
    parts = {
        "model": "m",
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
    }
    assert parse_request(json.dumps(parts).encode(), ChatRequest).chat_messages() == [
        {"role": "system", "content": "ab"}
    ]
    completion = parse_request(json.dumps({"model": "m", "prompt": "once"}).encode(), CompletionRequest)
    assert (completion.prompt, completion.max_tokens, completion.stop) == (["once"], 16, [])


def test_failures_map_to_status_codes(caplog):
    assert as_api_error(RayActorError()).status == 503
    with caplog.at_level(logging.ERROR, logger="ray.serve"):
        assert as_api_error(ClientDisconnect()).status == 499  # a stopped client: not our error, no traceback
        assert not caplog.records
        try:
            raise ValueError("boom")
        except ValueError as exc:
            assert as_api_error(exc).status == 500
        assert [r.exc_info[0] for r in caplog.records] == [ValueError]
    error = APIError(404, "no such model", param="model", code="model_not_found")
    assert as_api_error(error) is error


def test_serve_config_is_checked_at_start(tmp_path):
    with pytest.raises(ConfigError, match="serve.models.*unique"):
        load_config(None, ["serve.models=[{name: a}, {name: a}]"])
    with pytest.raises(ConfigError, match="serve.models.*min_replicas 3 > max_replicas 2"):
        load_config(None, ["serve.models=[{name: a, min_replicas: 3, max_replicas: 2}]"])
    with pytest.raises(ConfigError, match="serve.engine"):
        load_config(None, ["serve.engine=tgi"])
    missing = load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"serve.models\[0\].path \(default <workdir>/models/usergpt\): no model at"):
        model_paths(missing)


def test_vllm_engine_config_turns_on_prefix_caching_and_scaling(tmp_path):
    from ray.serve.llm import LLMConfig

    cfg = load_config(
        ROOT / "configs/llama2-7b.yaml",
        [
            "serve.models=[{name: usergpt, path: org/usergpt, accelerator_type: H100, tensor_parallel_size: 2, "
            "max_replicas: 8, target_ongoing_requests: 48}]"
        ],
    )
    model, path = model_paths(cfg)[0]
    kwargs = llm_config(model, path, cfg.serve)
    assert kwargs["model_loading_config"] == {"model_id": "usergpt", "model_source": "org/usergpt"}
    assert (
        kwargs["engine_kwargs"]["enable_prefix_caching"] is True
        and kwargs["engine_kwargs"]["tensor_parallel_size"] == 2
    )
    assert kwargs["engine_kwargs"]["max_model_len"] == 4096 and kwargs["accelerator_type"] == "H100"
    assert "placement_group_config" not in kwargs and "kv_cache_memory_bytes" not in kwargs["engine_kwargs"]
    assert kwargs["deployment_config"]["autoscaling_config"] == {
        "min_replicas": 1,
        "initial_replicas": 1,
        "max_replicas": 8,
        "target_ongoing_requests": 48,
    }
    LLMConfig(**kwargs)  # ray.serve.llm's own schema


def test_vllm_engine_without_gpus_uses_cpu_bundles_a_bounded_kv_cache_and_the_session_router(tmp_path):
    from ray.serve.llm import LLMConfig

    cfg = load_config(
        ROOT / "configs/tiny.yaml", ["serve.engine=vllm", f"serve.models=[{{name: usergpt, path: {tmp_path}}}]"]
    )
    kwargs = llm_config(cfg.serve.models[0], str(tmp_path), cfg.serve)
    assert "accelerator_type" not in kwargs
    assert kwargs["placement_group_config"] == {"bundles": [{"CPU": 1.0}]}
    assert kwargs["deployment_config"]["ray_actor_options"] == {"num_cpus": 0}  # the bundle is the replica's cost
    assert kwargs["engine_kwargs"]["kv_cache_memory_bytes"] == 2**30
    assert kwargs["engine_kwargs"]["max_num_seqs"] == cfg.serve.max_batch_size
    assert kwargs["deployment_config"]["request_router_config"] == {
        "request_router_class": "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"
    }
    LLMConfig(**kwargs)
    power = load_config(ROOT / "configs/tiny.yaml", ["serve.engine=vllm", "serve.request_router=power_of_two"])
    assert (
        "request_router_config"
        not in llm_config(power.serve.models[0], str(tmp_path), power.serve)["deployment_config"]
    )


def test_the_prefix_router_needs_the_vllm_engine():
    with pytest.raises(ConfigError, match="request_router"):
        load_config(ROOT / "configs/tiny.yaml", ["serve.request_router=prefix"])


def test_vllm_engine_without_vllm_fails_at_start_naming_the_key(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    code = (  # an install without vLLM: the import of ray.serve.llm fails
        "import sys; sys.modules['ray.serve.llm'] = None; from ray_apps.config import ConfigError, load_config; "
        "from ray_apps.serve import build_app\n"
        f"cfg = load_config('configs/llama2-7b.yaml', ['serve.models=[{{name: usergpt, path: {tmp_path}}}]'])\n"
        "try: build_app(cfg)\nexcept ConfigError as exc: print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "serve.engine=vllm needs vLLM" in out.stdout


def test_the_hf_engine_never_imports_vllm(offline_model_dir):
    code = (
        "import sys; from ray_apps.config import load_config; from ray_apps.serve import build_app; "
        f"build_app(load_config(None, ['serve.models=[{{name: m, path: {offline_model_dir}}}]'])); "
        "print(sorted(m for m in sys.modules if m == 'vllm' or m.startswith('ray.serve.llm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_serve_config_file_builds_the_vllm_app_with_an_override(offline_model_dir):
    spec = yaml.safe_load((ROOT / "configs/serve/tiny.yaml").read_text())
    [application] = spec["applications"]
    model = f"serve.models=[{{name: usergpt, path: '{offline_model_dir}', num_cpus: 0.25}}]"
    args = {"config": str(ROOT / application["args"]["config"]), "overrides": ["serve.engine=vllm", model]}
    app = app_builder(args)  # what `serve run configs/serve/tiny.yaml` calls, with the override in `args`
    assert type(app).__name__ == "Application" and app._bound_deployment.name == "OpenAiIngress"


def test_vllm_replicas_run_rays_download_task_only_for_models_in_cloud_storage(tmp_path):
    from ray.serve.llm import LLMConfig

    from ray_apps.serve.vllm_node import DownloadOnlyRemoteModels

    cfg = load_config(ROOT / "configs/tiny.yaml", ["serve.engine=vllm"])
    for source, downloads in ((str(tmp_path), False), ("org/usergpt", False), ("s3://bucket/usergpt", True)):
        config = LLMConfig(**llm_config(cfg.serve.models[0], source, cfg.serve))
        assert config.callback_config.callback_class == "ray_apps.serve.vllm_node:DownloadOnlyRemoteModels"
        callback = DownloadOnlyRemoteModels(llm_config=config)  # what the replica builds from that path
        callback.on_before_node_init()
        assert callback.ctx.run_init_node is downloads, source
