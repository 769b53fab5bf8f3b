"""Every numeric key of the schema at the ends of its accepted range: the config loads, or fails at load naming the
key, and the cheap code the key reaches runs with it. The rollout's and eval's keys are read by runs against
endpoints: test_rollout and test_eval run each of their cases (``CASES``) for real. (A range open above is tried at
its lower end only: what a huge value costs is memory and time, not a config that cannot work.)"""

from __future__ import annotations

import json
import typing

import numpy as np
import pytest
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from ray_apps.config import ConfigError, PipelineConfig, load_config
from ray_apps.conversation import RecordError, parse_sharegpt

from ..helpers import ROOT, SAMPLE

SERVED = "{name: usergpt, num_cpus: 0.25}"  # a served model's keys are tried on this entry of serve.models


def _numeric_keys(model: type[BaseModel] = PipelineConfig, prefix: str = ""):
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation)
        nested = next((a for a in (field.annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nested is not None:
            container = typing.get_origin(field.annotation)
            yield from _numeric_keys(nested, prefix + name + {list: "[].", dict: ".usergpt."}.get(container, "."))
        elif {int, float} & {field.annotation, *args}:
            yield prefix + name, int if int in (field.annotation, *args) else float, field.metadata


def _extremes(kind: type, metadata: list) -> list:
    ends = []
    for bound in metadata:
        if isinstance(bound, Ge | Le):
            ends.append(bound.ge if isinstance(bound, Ge) else bound.le)
        elif isinstance(bound, Gt):
            ends.append(bound.gt + (1 if kind is int else 1e-6))
        elif isinstance(bound, Lt):
            ends.append(bound.lt - (1 if kind is int else 1e-6))
    return ends or [-1 if kind is int else -1.0]  # no bound at all: a negative value


CASES = [(key, value) for key, kind, metadata in _numeric_keys() for value in _extremes(kind, metadata)]


def _override(key: str, value) -> str:
    if key.startswith("serve.models[]."):
        return f"serve.models=[{SERVED[:-1]}, {key.rsplit('.', 1)[1]}: {value}}}]"
    return f"{key}={value}"


def _sample_records(count: int = 40) -> list[dict]:
    records = []
    for line in (SAMPLE / "sharegpt_sample.jsonl").read_text(errors="replace").splitlines():
        try:
            records.append(parse_sharegpt(line))
        except RecordError:
            pass
    return records[:count]


def _dedup(threshold: float, cfg) -> None:
    from ray_apps.data.dedup import NearDuplicateIndex, signature, words

    index = NearDuplicateIndex(cfg.model_copy(update={"threshold": threshold}))
    texts = [r["messages"][0]["content"] for r in _sample_records()]
    for i, text in enumerate(texts):
        minhash = index.minhash(signature(words(text), cfg))
        if not index.matches(minhash):
            index.add(i, minhash)
    again = index.minhash(signature(words(texts[0]), cfg))
    assert 0 in index.matches(again)  # an identical text is found at any threshold


def _prepare(config: PipelineConfig, tmp_path) -> None:
    from ray_apps.data.prepare import clean_record
    from ray_apps.data.segment import segment, split_of
    from ray_apps.models.tokens import text_token_counter

    cfg = config.prepare
    count = text_token_counter(None)
    for line, raw in enumerate((SAMPLE / "sharegpt_sample.jsonl").read_text(errors="replace").splitlines()[:40]):
        row = clean_record({"source": "sample", "line": line, "raw": raw, "reason": "", "detail": ""}, cfg)
        if row["reason"]:  # a record rejected with its reason is accounted for
            continue
        try:
            segments, _ = segment(json.loads(row["record"]), cfg.segment, count)
        except RecordError as err:
            assert err.reason and err.detail
            continue
        assert segments and split_of(row["id"], cfg.eval_fraction, config.run.seed) in ("train", "eval")


def _model(config: PipelineConfig, tmp_path) -> None:
    import torch

    from ray_apps.models import run_init_model
    from ray_apps.models.loading import load_model

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _sample_records()))
    path = run_init_model(config, corpus, tmp_path / "model")
    model = load_model(str(path), "HF_TOKEN")
    assert 256 < model(torch.tensor([[1, 2, 3]])).logits.shape[-1] <= config.model.init.vocab_size  # bytes and more


def _train(config: PipelineConfig, tmp_path) -> None:
    from ray_apps.train.sft import deepspeed_config, training_args

    for name in ("usergpt", "baseline"):
        cfg = config.train.for_model(name)
        args = training_args(cfg, str(tmp_path), cfg.num_workers, use_deepspeed=False, evaluate=True)
        per_step = cfg.per_device_batch_size * cfg.num_workers
        assert args.gradient_accumulation_steps * per_step == cfg.effective_batch_size
        assert deepspeed_config(cfg)["zero_optimization"]["stage"] == cfg.zero_stage


def _serve(config: PipelineConfig, tmp_path) -> None:
    from ray.serve.llm import LLMConfig

    from ray_apps.serve.vllm import llm_config

    for model in config.serve.models:
        LLMConfig(**llm_config(model, str(tmp_path), config.serve))  # ray.serve.llm's own schema accepts it


REACHES = {  # key prefix -> the cheap code it reaches
    "prepare.dedup.": lambda c, t: _dedup(c.prepare.dedup.threshold, c.prepare.dedup),
    "prepare.": _prepare,
    "run.seed": lambda c, t: (_prepare(c, t), np.random.default_rng(c.run.seed)),
    "model.init.": _model,
    "train.": _train,
    "serve.": _serve,
}


@pytest.mark.parametrize(("key", "value"), CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_an_extreme_accepted_value_works_or_fails_at_load_naming_its_key(key, value, tmp_path):
    try:
        config = load_config(ROOT / "configs" / "tiny.yaml", [_override(key, value)])
    except ConfigError as exc:
        section, _, leaf = key.replace("[]", "").rpartition(".")
        assert section.split(".")[0] in str(exc) and leaf in str(exc), exc
        return
    reach = next((run for prefix, run in REACHES.items() if key.startswith(prefix)), None)
    if reach is not None:  # rollout.* and eval.*: run by test_rollout and test_eval
        reach(config, tmp_path)


def test_every_numeric_key_is_tried():
    keys = {key for key, _ in CASES}
    assert len(keys) > 90 and "rollout.dedup_threshold" in keys and "serve.models[].max_replicas" in keys
    assert {"prepare.dedup.threshold=1", "rollout.dedup_threshold=1", "prepare.dedup.num_perm=16"} <= {
        f"{k}={v}" for k, v in CASES
    }
