"""The OpenAI protocol layer and the serve config, without Ray."""

import json
import subprocess
import sys

import pytest
from ray.exceptions import RayActorError

from ray_apps.config import ConfigError, load_config
from ray_apps.serve import build_app, model_paths
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


def test_failures_map_to_status_codes():
    assert as_api_error(RayActorError()).status == 503
    assert as_api_error(ValueError("boom")).status == 500
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
    assert kwargs["deployment_config"]["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 8,
        "target_ongoing_requests": 48,
    }
    try:  # ray.serve.llm's own schema, when this Ray ships it importable without vLLM
        from ray.llm._internal.serve.core.configs.llm_config import LLMConfig
    except ImportError:
        return
    LLMConfig(**kwargs)


def test_vllm_engine_without_vllm_fails_at_start_naming_the_key():
    try:
        import vllm  # noqa: F401

        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    cfg = load_config(ROOT / "configs/llama2-7b.yaml", ["serve.models=[{name: usergpt, path: org/usergpt}]"])
    with pytest.raises(ConfigError, match="serve.engine=vllm needs vLLM"):
        build_app(cfg)


def test_the_hf_engine_never_imports_vllm(offline_model_dir):
    code = (
        "import sys; from ray_apps.config import load_config; from ray_apps.serve import build_app; "
        f"build_app(load_config(None, ['serve.models=[{{name: m, path: {offline_model_dir}}}]'])); "
        "print(sorted(m for m in sys.modules if m == 'vllm' or m.startswith('ray.serve.llm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
