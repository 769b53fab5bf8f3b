"""The `realm eval` section."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .endpoint import EndpointConfig
from .section import Section


class BenchmarkConfig(Section):
    name: str = Field(
        ..., description="Benchmark name; answers and judgments go to <eval.output>/<name>/ as FastChat lays them out."
    )
    questions: str = Field(..., description="FastChat question.jsonl (question_id, category, turns).")
    reference_answers: str | None = Field(
        None,
        description="FastChat reference answers (model_answer format) used to judge math, reasoning and coding; null: "
        "none.",
    )


class AnswerEndpointConfig(EndpointConfig):
    model: str = Field("baseline", description="Model that answers; its answers go to model_answer/<model>.jsonl.")
    temperature: float = Field(
        0.7,
        ge=0,
        le=2,
        description="Temperature of categories outside FastChat's table (writing/roleplay 0.7, "
        "extraction/math/coding/reasoning 0.0, stem/humanities 0.1).",
    )
    max_tokens: int = Field(1024, ge=1, description="Most new tokens of one answer.")


class JudgeEndpointConfig(EndpointConfig):
    model: str = Field("gpt-4", description="Judge model; judgments go to model_judgment/<model>_{single,pair}.jsonl.")
    temperature: float = Field(0.0, ge=0, le=2, description="Judge sampling temperature (FastChat: 0).")
    max_tokens: int = Field(2048, ge=1, description="Most tokens of one judgment.")


class EvalConfig(Section):
    output: str | None = Field(None, description="Directory of answers and judgments; null: <workdir>/eval.")
    benchmarks: list[BenchmarkConfig] = Field(
        default_factory=list, description="Question sets (FastChat format): MT-Bench, Vicuna-bench, ..."
    )
    answer: AnswerEndpointConfig = Field(
        default_factory=AnswerEndpointConfig, description="`realm eval answers`: the model that answers."
    )
    judge: JudgeEndpointConfig | None = Field(
        None, description="`realm eval judge`: the judge's endpoint; null: no judge configured."
    )
    judge_prompts: str | None = Field(
        None, description="FastChat judge_prompts.jsonl (single-v1, pair-v2, ... by name)."
    )
    judge_mode: Literal["single", "pairwise-baseline", "pairwise-all"] = Field(
        "single",
        description="single: grade each answer 1-10; pairwise-baseline: each model against baseline_model; "
        "pairwise-all: every pair.",
    )
    models: list[str] = Field(
        default_factory=list, description="Models to judge (answer files by name); empty: every model with answers."
    )
    baseline_model: str | None = Field(
        None, description="pairwise-baseline: the model every other one is compared with."
    )
    parse_retries: int = Field(
        2, ge=0, description="Times an unparseable verdict is asked again before it is recorded as an error."
    )
    actors: int = Field(2, ge=1, description="Ray Data actors sending answer and judge requests.")
    requests_per_actor: int = Field(8, ge=1, description="Requests in flight in one actor.")
    max_failure_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Exit non-zero (after writing everything) when more than this share of a run's answers or "
        "judgments failed.",
    )
    bootstrap_rounds: int = Field(
        1000, ge=10, description="`realm eval show`: bootstrap resamples for the 95% confidence intervals."
    )
    stats_tokenizer: str | None = Field(
        None,
        description="`realm eval stats`: tokenizer for lengths (path or hub id); null: model.base's, or the tiny "
        "base model's when present, else words.",
    )
    embedding_model: str | None = Field(
        None, description="Embedding model for topic diversity (path or hub id, mean pooled); null: TF-IDF (offline)."
    )
    stats_sample: int = Field(
        500, ge=2, description="Sessions sampled per dataset for topic diversity (pairwise similarities)."
    )
    simulator_model: str | None = Field(
        None, description="`realm eval simulator`: the user simulator; null: <workdir>/models/usergpt."
    )
    simulator_base: str | None = Field(
        None, description="The untrained base model to compare with; null: model.base (or the tiny base model)."
    )
    heldout: str | None = Field(
        None, description="Held-out real conversations; null: the test split of <workdir>/real."
    )
    human_detector: str | None = Field(
        None,
        description="A text classifier telling human from machine text (path or hub id), for the simulated and "
        "real user turns' human-like ratio (PlatoLM); null: not measured, nothing downloaded.",
    )
    human_label: str = Field(
        "human", min_length=1, description="The human_detector's label for human text (case is ignored)."
    )
