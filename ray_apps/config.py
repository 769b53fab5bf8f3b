"""One pydantic schema for every stage: loaded from YAML, overridden with dotted ``key=value``.

Every knob has a default and a one-line description. Unknown keys and bad values fail at
start with a message naming the key. Secrets never live here: the config names the
environment variable that holds one (for example ``model.hf_token_env``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .conversation import DEFAULT_ROLE_MAP, ROLES, SIMULATOR_SYSTEM_PROMPT
from .errors import StartError


class ConfigError(StartError, ValueError):
    """A config that cannot run; the message names the offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(Section):
    name: str = Field("realm", description="Run name, used for run directories and Ray Train runs.")
    workdir: str = Field("runs/realm", description="Directory that holds every stage's output.")
    seed: int = Field(0, description="Seed for splits, model initialisation and sampling.")


class RayConfig(Section):
    address: str | None = Field(None, description="Ray cluster address; null starts or joins a local one.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a new local Ray; null uses all.")


class DedupConfig(Section):
    exact: bool = Field(True, description="Drop conversations whose normalised text hash was seen before.")
    near: bool = Field(True, description="Drop near duplicates found by MinHash LSH (first user turn and whole conversation).")
    threshold: float = Field(0.85, gt=0, le=1, description="Estimated Jaccard similarity at which two texts are near duplicates.")
    num_perm: int = Field(128, ge=16, le=512, description="MinHash permutations.")
    shingle_words: int = Field(3, ge=1, description="Words per shingle for MinHash.")
    min_first_turn_words: int = Field(
        8, ge=1, description="First user turns shorter than this are not near-dedup keys (greetings repeat)."
    )


class SegmentConfig(Section):
    max_tokens: int = Field(2048, ge=16, description="Longest segment, in tokens of the target tokenizer.")
    tokenizer: str | None = Field(
        None,
        description="Target tokenizer (hub id or local path); null counts tokens with a word/punctuation "
        "approximation (used by the tiny default, whose tokenizer is trained after prepare).",
    )
    overhead_tokens: int = Field(4, ge=0, description="Chat-template tokens added per message.")


class PrepareConfig(Section):
    inputs: list[str] = Field(default_factory=list, description="ShareGPT files or globs (JSON array or JSONL; local or fsspec URL).")
    num_workers: int = Field(2, ge=1, description="Concurrent Ray Data tasks per stage.")
    batch_size: int = Field(512, ge=1, description="Conversations per Ray Data batch.")
    role_map: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ROLE_MAP),
        description="ShareGPT speaker name (lower case) to role; unknown speakers are rejected.",
    )
    html_to_markdown: list[str] = Field(
        default_factory=lambda: ["assistant"],
        description="Roles whose HTML is converted to markdown (ShareGPT exports hold the assistant's as HTML).",
    )
    normalize_whitespace: bool = Field(True, description="Unify newlines, strip trailing spaces, collapse blank lines.")
    merge_consecutive: bool = Field(True, description="Merge consecutive messages of the same role.")
    drop_leading_assistant: bool = Field(True, description="Drop assistant turns before the first user turn.")
    min_turns: int = Field(1, ge=1, description="Fewest user turns a conversation must have.")
    min_chars: int = Field(16, ge=0, description="Fewest characters of content a conversation must have.")
    blocklist: list[str] = Field(default_factory=list, description="Phrases (case-insensitive) whose conversations are dropped.")
    languages: list[str] = Field(
        default_factory=lambda: ["en"], description="ISO 639-1 codes to keep (py3langid); empty keeps all."
    )
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Exact and near-duplicate removal.")
    segment: SegmentConfig = Field(default_factory=SegmentConfig, description="Splitting of long conversations.")
    eval_fraction: float = Field(0.05, ge=0, lt=1, description="Share of conversations (by id hash) in the eval split.")
    max_invalid_fraction: float = Field(
        0.25, ge=0, le=1, description="Exit non-zero when more than this share of input records is malformed."
    )

    @field_validator("role_map")
    @classmethod
    def _roles_known(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in ROLES}
        if bad:
            raise ValueError(f"roles must be one of {ROLES}, got {bad}")
        return {k.lower(): v for k, v in value.items()}

    @field_validator("html_to_markdown")
    @classmethod
    def _html_roles_known(cls, value: list[str]) -> list[str]:
        bad = [r for r in value if r not in ROLES]
        if bad:
            raise ValueError(f"roles must be among {ROLES}, got {bad}")
        return value


class ModelInitConfig(Section):
    preset: Literal["tiny"] = Field("tiny", description="Architecture preset of `realm init-model`.")
    vocab_size: int = Field(4096, ge=300, description="Byte-level BPE vocabulary size (special tokens included).")
    hidden_size: int = Field(128, ge=8, description="Hidden size of the LLaMA-architecture model.")
    intermediate_size: int = Field(344, ge=8, description="MLP size.")
    num_hidden_layers: int = Field(2, ge=1, description="Transformer layers.")
    num_attention_heads: int = Field(4, ge=1, description="Attention heads.")
    num_key_value_heads: int = Field(2, ge=1, description="Key/value heads (grouped-query attention).")
    max_position_embeddings: int = Field(2048, ge=64, description="Longest sequence the model accepts.")


class ModelConfig(Section):
    base: str | None = Field(
        None, description="Base model: a hub id or local path. null builds the tiny model with `realm init-model`."
    )
    init: ModelInitConfig = Field(default_factory=ModelInitConfig, description="Tiny model factory settings.")
    hf_token_env: str = Field("HF_TOKEN", description="Environment variable holding a hub token (never written to disk).")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub.")


class LoraConfig(Section):
    enabled: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights; merged on export.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], description="Module names that get adapters."
    )


class TrainConfig(Section):
    data: str | None = Field(None, description="Prepared dataset directory (`realm prepare` output); null: <workdir>/real.")
    eval_data: str | None = Field(
        None, description="Prepared dataset whose eval split measures the run (e.g. real sessions for a model trained on simulated ones); null: train.data's."
    )
    base_model: str | None = Field(None, description="Model to fine-tune (hub id or path); null: model.base or <workdir>/models/base.")
    output: str | None = Field(None, description="Exported model directory; null: <workdir>/models/<usergpt|baseline>.")
    max_length: int = Field(2048, ge=16, description="Longest training sequence in tokens (packed block length).")
    packing: bool = Field(True, description="Padding-free packing: sequences share a row, attention never crosses them.")
    end_marker: bool = Field(True, description="User view: end naturally finished conversations with <|endconversation|>.")
    simulator_prompt: str = Field(SIMULATOR_SYSTEM_PROMPT, description="User view: the simulator's system prompt (replaces the original).")
    learning_rate: float = Field(2e-5, gt=0, description="Peak learning rate.")
    num_epochs: float = Field(3, gt=0, description="Passes over the training set.")
    max_steps: int = Field(-1, description="Stop after this many optimizer steps; -1 runs num_epochs.")
    effective_batch_size: int = Field(128, ge=1, description="Sequences (packed rows when packing) per optimizer step over all workers.")
    per_device_batch_size: int = Field(4, ge=1, description="Sequences per worker per micro-step.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="Learning-rate schedule."
    )
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="Share of steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    zero_stage: int = Field(3, description="DeepSpeed ZeRO stage: 0, 2 or 3.")
    offload_optimizer: bool = Field(False, description="ZeRO: keep optimizer states in CPU memory.")
    offload_params: bool = Field(False, description="ZeRO-3: keep parameters in CPU memory.")
    bf16: bool = Field(True, description="Train in bfloat16.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    num_workers: int = Field(8, ge=1, description="Ray Train workers.")
    use_gpu: bool = Field(True, description="One GPU per worker.")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs reserved per worker (leave some free for Ray Data).")
    storage_path: str | None = Field(None, description="Ray Train storage (local dir, s3:// or gs://); null: <workdir>/ray_train.")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept in storage (CheckpointConfig.num_to_keep).")
    max_failures: int = Field(1, ge=-1, description="Worker-failure restarts from the last checkpoint; -1 is unlimited.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    eval_steps: int = Field(50, ge=1, description="Evaluate every N optimizer steps (and once before training).")
    logging_steps: int = Field(10, ge=1, description="Log progress every N optimizer steps.")
    lora: LoraConfig = Field(default_factory=LoraConfig, description="LoRA through peft.")
    fail_at_step: int | None = Field(None, ge=1, description="Testing only: fail once at this step to exercise recovery.")

    @field_validator("zero_stage")
    @classmethod
    def _zero_stage(cls, value: int) -> int:
        if value not in (0, 2, 3):
            raise ValueError(f"ZeRO stage must be 0, 2 or 3, got {value}")
        return value


class ServedModelConfig(Section):
    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Model name clients ask for (`model` in requests).")
    path: str | None = Field(None, description="Hub id or local directory; null: <workdir>/models/<name>.")
    num_cpus: float = Field(1.0, ge=0, description="CPUs per replica (fractions let several fit on a small machine).")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica (hf engine); the vllm engine takes GPUs from tensor_parallel_size.")
    min_replicas: int = Field(1, ge=0, description="Fewest replicas (0 lets an idle model scale to zero).")
    max_replicas: int = Field(1, ge=1, description="Most replicas the autoscaler may start.")
    target_ongoing_requests: float = Field(32, gt=0, description="Autoscaling target: in-flight requests per replica.")
    max_ongoing_requests: int = Field(128, ge=1, description="Requests a replica accepts at once (>= max_batch_size so batches can fill).")
    accelerator_type: str | None = Field(None, description="vllm engine: GPU type to schedule on, e.g. H100 or A10G.")
    tensor_parallel_size: int = Field(1, ge=1, description="vllm engine: GPUs one replica shards the model over.")


class ServeConfig(Section):
    engine: Literal["hf", "vllm"] = Field(
        "hf", description="hf: our transformers deployment (CPU or GPU); vllm: ray.serve.llm (GPU clusters, needs the gpu extra)."
    )
    models: list[ServedModelConfig] = Field(
        default_factory=lambda: [ServedModelConfig(name="usergpt"), ServedModelConfig(name="baseline")],
        description="Models served by name behind one OpenAI-compatible API.",
    )
    app_name: str = Field("realm", description="Ray Serve application name.")
    host: str = Field("127.0.0.1", description="HTTP host of the Serve proxy (0.0.0.0 to listen on every interface).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
    route_prefix: str = Field("/", description="URL prefix; clients use base_url http://host:port<prefix>v1.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding a bearer token; when set, requests without it get 401."
    )
    max_batch_size: int = Field(64, ge=1, description="hf engine: most sequences decoded together (continuous batching: callers join between steps).")
    batch_wait_timeout_s: float = Field(0.02, ge=0, description="hf engine: how long an idle replica waits for more callers before it starts decoding.")
    prefix_cache_mb: float = Field(
        512, ge=0, description="hf engine: memory for keys and values of finished sequences, reused when a prompt extends one (0: off)."
    )
    stream_interval_s: float = Field(
        0.05, ge=0, description="hf engine: longest wait before decoded text goes to the caller (larger chunks cost less)."
    )
    max_model_len: int | None = Field(None, ge=16, description="Context length (prompt + completion); null: the model's own.")
    max_n: int = Field(16, ge=1, description="Largest `n` (choices per request) accepted.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="hf engine weights: auto is bfloat16 on GPU, float32 on CPU."
    )
    enable_prefix_caching: bool = Field(True, description="vllm engine: reuse the KV cache of a shared prefix (multi-turn rollouts resend the history).")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="vllm engine: extra vLLM engine arguments.")
    router_num_cpus: float = Field(0.1, ge=0, description="hf engine: CPUs of the HTTP router replica.")
    graceful_shutdown_timeout_s: float = Field(20, ge=0, description="How long a stopping replica may finish in-flight requests.")

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

    @field_validator("route_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value


class EndpointConfig(Section):
    model: str = Field(..., description="Model name sent in requests.")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL (…/v1); null: our Serve app at serve.host:serve.port.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key; null sends a placeholder key.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(512, ge=1, description="Most tokens of one turn.")
    extra_body: dict[str, Any] = Field(default_factory=dict, description="Extra request fields (e.g. vLLM's skip_special_tokens).")
    timeout_s: float = Field(120, gt=0, description="Seconds before one request times out (then it is retried).")
    max_retries: int = Field(4, ge=0, description="Retries on 429, 5xx and timeouts (exponential backoff with jitter, Retry-After honoured).")
    requests_per_minute: float | None = Field(None, gt=0, description="Request rate limit shared by every actor of the run; null: none.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Token rate limit (prompt + max_tokens) shared by every actor; null: none.")
    tokenizer: str | None = Field(None, description="Tokenizer for token counts: the rollout context budget, token rate limits (path or hub id); null: <workdir>/models/<model> if present, else ~4 characters a token.")
    price_per_1k_prompt: float = Field(0.0, ge=0, description="Cost of 1,000 prompt tokens, for the cost estimate.")
    price_per_1k_completion: float = Field(0.0, ge=0, description="Cost of 1,000 completion tokens, for the cost estimate.")


class UserEndpointConfig(EndpointConfig):
    model: str = Field("usergpt", description="Model name sent in requests (the user simulator).")
    temperature: float = Field(0.9, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(128, ge=1, description="Most tokens of one user turn.")


class AssistantEndpointConfig(EndpointConfig):
    model: str = Field("baseline", description="Model name sent in requests (the assistant).")


class RolloutConfig(Section):
    mode: Literal["free", "seeded"] = Field("free", description="free: the simulator opens every session; seeded: sessions start from `seeds`.")
    seeds: str | None = Field(None, description="Seeded mode: JSONL or Parquet with `id` and `question` (and optionally `answer`).")
    num_sessions: int = Field(200, ge=1, description="Free mode: number of sessions.")
    output: str | None = Field(None, description="Output directory; null: <workdir>/realchat.")
    user: UserEndpointConfig = Field(default_factory=UserEndpointConfig, description="The user simulator's endpoint and sampling.")
    assistant: AssistantEndpointConfig = Field(default_factory=AssistantEndpointConfig, description="The assistant's endpoint and sampling.")
    personas: list[str] = Field(
        default_factory=lambda: [SIMULATOR_SYSTEM_PROMPT], min_length=1,
        description="Simulator system prompts; each session gets one (by a hash of its seed).",
    )  # fmt: skip
    assistant_system_prompt: str | None = Field(None, description="System prompt of the assistant; null: none.")
    max_turns: int = Field(8, ge=1, description="Most user turns in a session.")
    min_turns: int = Field(1, ge=1, description="Fewest user turns; a shorter session is written as a failure.")
    context_tokens: int = Field(2048, ge=64, description="Context budget: a session stops before a turn could overflow it.")
    on_length: Literal["keep", "end", "drop"] = Field(
        "keep", description="An assistant answer cut by max_tokens: keep it and go on, keep it and end, or drop the exchange and end."
    )
    max_resamples: int = Field(3, ge=0, description="Times a filtered user turn is resampled before the session ends.")
    dedup_threshold: float = Field(0.85, gt=0, le=1, description="Opening questions this similar (MinHash Jaccard) to an earlier one are duplicates.")
    actors: int = Field(2, ge=1, description="Ray Data actors driving sessions.")
    sessions_per_actor: int = Field(16, ge=1, description="Sessions in flight in one actor (asyncio).")
    breaker_error_rate: float = Field(0.5, gt=0, le=1, description="Stop the run when this share of recent requests to an endpoint failed after retries.")
    breaker_window: int = Field(20, ge=1, description="Recent requests the circuit breaker looks at.")
    progress_interval_s: float = Field(10, gt=0, description="Seconds between progress summary lines.")

    def session_fingerprint(self) -> str:
        """Hash of what decides a session's content: resuming with other settings starts new sessions."""
        keep = {"mode", "seeds", "num_sessions", "personas", "assistant_system_prompt", "max_turns", "min_turns",
                "context_tokens", "on_length", "max_resamples", "dedup_threshold"}  # fmt: skip
        operational = {"max_retries", "timeout_s", "requests_per_minute", "tokens_per_minute", "price_per_1k_prompt", "price_per_1k_completion"}
        data = self.model_dump(mode="json", include=keep)
        for role in ("user", "assistant"):
            data[role] = getattr(self, role).model_dump(mode="json", exclude=operational)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class BenchmarkConfig(Section):
    name: str = Field(..., description="Benchmark name; answers and judgments go to <eval.output>/<name>/ as FastChat lays them out.")
    questions: str = Field(..., description="FastChat question.jsonl (question_id, category, turns).")
    reference_answers: str | None = Field(
        None, description="FastChat reference answers (model_answer format) used to judge math, reasoning and coding; null: none."
    )


class AnswerEndpointConfig(EndpointConfig):
    model: str = Field("baseline", description="Model that answers; its answers go to model_answer/<model>.jsonl.")
    temperature: float = Field(0.7, ge=0, le=2, description="Temperature of categories outside FastChat's table (writing/roleplay 0.7, "
                               "extraction/math/coding/reasoning 0.0, stem/humanities 0.1).")  # fmt: skip
    max_tokens: int = Field(1024, ge=1, description="Most new tokens of one answer.")


class JudgeEndpointConfig(EndpointConfig):
    model: str = Field("gpt-4", description="Judge model; judgments go to model_judgment/<model>_{single,pair}.jsonl.")
    temperature: float = Field(0.0, ge=0, le=2, description="Judge sampling temperature (FastChat: 0).")
    max_tokens: int = Field(2048, ge=1, description="Most tokens of one judgment.")


class EvalConfig(Section):
    output: str | None = Field(None, description="Directory of answers and judgments; null: <workdir>/eval.")
    benchmarks: list[BenchmarkConfig] = Field(default_factory=list, description="Question sets (FastChat format): MT-Bench, Vicuna-bench, ...")
    answer: AnswerEndpointConfig = Field(default_factory=AnswerEndpointConfig, description="`realm eval answers`: the model that answers.")
    judge: JudgeEndpointConfig | None = Field(None, description="`realm eval judge`: the judge's endpoint; null: no judge configured.")
    judge_prompts: str | None = Field(None, description="FastChat judge_prompts.jsonl (single-v1, pair-v2, ... by name).")
    judge_mode: Literal["single", "pairwise-baseline", "pairwise-all"] = Field(
        "single", description="single: grade each answer 1-10; pairwise-baseline: each model against baseline_model; pairwise-all: every pair."
    )
    models: list[str] = Field(default_factory=list, description="Models to judge (answer files by name); empty: every model with answers.")
    baseline_model: str | None = Field(None, description="pairwise-baseline: the model every other one is compared with.")
    parse_retries: int = Field(2, ge=0, description="Times an unparseable verdict is asked again before it is recorded as an error.")
    actors: int = Field(2, ge=1, description="Ray Data actors sending answer and judge requests.")
    requests_per_actor: int = Field(8, ge=1, description="Requests in flight in one actor.")
    bootstrap_rounds: int = Field(1000, ge=10, description="`realm eval show`: bootstrap resamples for the 95% confidence intervals.")
    stats_tokenizer: str | None = Field(None, description="`realm eval stats`: tokenizer for lengths (path or hub id); null: <workdir>/models/base if present, else words.")
    embedding_model: str | None = Field(None, description="Embedding model for topic diversity (path or hub id, mean pooled); null: TF-IDF (offline).")
    stats_sample: int = Field(500, ge=2, description="Sessions sampled per dataset for topic diversity (pairwise similarities).")
    simulator_model: str | None = Field(None, description="`realm eval simulator`: the user simulator; null: <workdir>/models/usergpt.")
    simulator_base: str | None = Field(None, description="The untrained base model to compare with; null: <workdir>/models/base.")
    heldout: str | None = Field(None, description="Held-out real conversations; null: the test split of <workdir>/real.")


class PipelineConfig(Section):
    """The whole pipeline's config; each stage reads its own section."""

    run: RunConfig = Field(default_factory=RunConfig, description="Run name, working directory, seed.")
    ray: RayConfig = Field(default_factory=RayConfig, description="How to reach Ray.")
    prepare: PrepareConfig = Field(default_factory=PrepareConfig, description="`realm prepare`: ShareGPT to cleaned conversations.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Base model and the tiny model factory.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Supervised fine-tuning.")
    serve: ServeConfig = Field(default_factory=ServeConfig, description="OpenAI-compatible model serving on Ray Serve.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="Synthesising sessions between the simulator and an assistant.")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="Benchmarks, LLM judge, dataset statistics, simulator fidelity.")

    def fingerprint(self) -> str:
        """A short stable hash of the resolved config."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _format_errors(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key")
        else:
            lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "invalid config:\n" + "\n".join(lines)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"invalid override {dotted!r}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=value`` to ``("a.b", value)``; the value is read as YAML (numbers, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"invalid override {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> PipelineConfig:
    """Read a YAML config (or the defaults), apply ``key=value`` overrides, validate."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    for item in overrides:
        _set_dotted(tree, *parse_override(item))
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def write_run_config(config: PipelineConfig, directory: str | Path) -> str:
    """Write the resolved config and its fingerprint into a run directory; returns the fingerprint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fingerprint = config.fingerprint()
    text = f"# fingerprint: {fingerprint}\n" + yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    (directory / "resolved_config.yaml").write_text(text)
    (directory / "fingerprint").write_text(fingerprint + "\n")
    return fingerprint
