"""A real pretrained model end to end on CPU: SmolLM2-135M-Instruct from its GGUF file (`model.base=<the .gguf>`)
trains as UserGPT with LoRA, and the same tokenizer without its template (a base model) trains as an assistant in
full with Vicuna, both through Ray Train + DeepSpeed; both exports are served on both engines, answer the `openai`
client, and the simulator's end marker, forced with logit_bias, ends rollout sessions; termination F1 is a number on
the real tokenizer. A few steps on short conversations keep it to minutes."""

import json
import os

import openai
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from ray import serve

from ray_apps.config import load_config
from ray_apps.conversation import ASSISTANT, END_OF_CONVERSATION, USER, RecordError, parse_sharegpt
from ray_apps.data.language import detect_language
from ray_apps.eval.scoring import Sampling, score_human_turns
from ray_apps.models import load_model, load_tokenizer
from ray_apps.models.chat_format import CHATML, VICUNA, end_marker_id, end_of_turn_id, fit_model
from ray_apps.records import PARQUET_SCHEMA, parquet_row
from ray_apps.rollout import run_rollout
from ray_apps.serve import start_serve
from ray_apps.train import run_train

from ..helpers import ROOT, SAMPLE, free_port, smollm2_gguf

pytestmark = pytest.mark.integration

TRAIN = [
    "train.max_length=256",
    "train.max_steps=2",
    "train.effective_batch_size=4",
    "train.per_device_batch_size=2",
    "train.eval_steps=2",
    "train.save_steps=100",
    "train.logging_steps=1",
]


@pytest.fixture(scope="module")
def real_data(tmp_path_factory):
    """Short English conversations of the sample corpus as a prepared dataset (24 to train on, 6 held out), all
    ended."""
    records = []
    for line in (SAMPLE / "sharegpt_sample.jsonl").read_text(errors="replace").splitlines():
        try:
            record = parse_sharegpt(line)
        except RecordError:
            continue
        roles, text = [m["role"] for m in record["messages"]], " ".join(m["content"] for m in record["messages"])
        if roles[:1] == [USER] and roles[-1] == ASSISTANT and len(text) < 600 and detect_language(text)[0] == "en":
            records.append({**record, "meta": {"ended_naturally": True}})
    assert len(records) >= 30
    root = tmp_path_factory.mktemp("real-data")
    for split, part in (("train", records[:24]), ("eval", records[24:30])):
        (root / "parquet" / split).mkdir(parents=True)
        table = pa.Table.from_pylist([parquet_row(r) for r in part], schema=PARQUET_SCHEMA)
        pq.write_table(table, root / "parquet" / split / "part-0.parquet")
    return root


@pytest.fixture(scope="module")
def templateless(smollm2_dir, tmp_path_factory):
    """SmolLM2 without its chat template: what a base model looks like (its weights linked, not copied)."""
    directory = tmp_path_factory.mktemp("smollm2-base")
    for item in smollm2_dir.iterdir():
        if item.name != "chat_template.jinja":
            os.symlink(item, directory / item.name)
    return directory


def _config(workdir, *overrides):
    return load_config(ROOT / "configs/tiny.yaml", [f"run.workdir={workdir}", *overrides])


@pytest.fixture(scope="module")
def trained(ray_session, smollm2_workdir, real_data, templateless, tmp_path_factory, pipeline_run):
    """UserGPT (LoRA, ZeRO-2) from the GGUF file, and an assistant (all weights, ZeRO-0) from the template-less
    copy; their exported directories. After the session's tiny job (``pipeline_run``: so these tests are `slow` and
    run last): two trainings of a 135M model beside it on 2 cores starved it, and its rollout, which the job
    stops part-way on purpose, finished before the stop in a fresh clone's run."""
    out = tmp_path_factory.mktemp("real-trained")
    common = [f"train.data={real_data}", f"train.storage_path={out / 'storage'}", *TRAIN]
    usergpt = run_train(
        _config(
            smollm2_workdir,  # where the session dequantized the GGUF file: found there, not converted again
            f"model.base={smollm2_gguf()}",
            f"train.output={out / 'usergpt'}",
            "train.lora.enabled=true",
            "train.zero_stage=2",
            *common,
        ),
        "user",
    )
    assistant = run_train(
        _config(
            out,
            f"model.base={templateless}",
            f"train.output={out / 'assistant'}",
            "train.learning_rate=1e-5",
            *common,
        ),
        "assistant",
    )
    return {"usergpt": usergpt, "assistant": assistant}


def test_usergpt_trains_with_lora_from_the_gguf_file_and_exports_its_chat_format(trained, smollm2_dir):
    metrics = trained["usergpt"]
    assert metrics["step"] == 2 and metrics["eval_loss_last"] < metrics["eval_loss_first"], metrics
    tokenizer, exported = load_tokenizer(metrics["output"]), load_model(metrics["output"])
    assert tokenizer.chat_template == CHATML
    assert tokenizer(END_OF_CONVERSATION, add_special_tokens=False).input_ids == [end_marker_id(tokenizer)]
    assert exported.get_input_embeddings().weight.shape[0] == len(tokenizer) == 49153
    assert end_of_turn_id(tokenizer) in exported.generation_config.eos_token_id
    # LoRA left the embeddings alone but for the end marker's new row, which it trained (peft's trainable tokens)
    base = load_model(str(smollm2_dir))
    fit_model(base, tokenizer)
    changed = (exported.get_input_embeddings().weight != base.get_input_embeddings().weight).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [end_marker_id(tokenizer)]


def test_a_base_model_without_a_template_trains_in_full_with_vicuna(trained, templateless):
    metrics = trained["assistant"]
    assert metrics["step"] == 2 and metrics["eval_loss_last"] is not None, metrics
    tokenizer = load_tokenizer(metrics["output"])
    assert tokenizer.chat_template == VICUNA and len(tokenizer) == 49153
    assert end_of_turn_id(tokenizer) == tokenizer.eos_token_id
    exported = load_model(metrics["output"])
    base = load_model(str(templateless))
    assert not torch.equal(exported.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_termination_f1_is_a_number_on_the_real_tokenizer(trained, real_data, smollm2_dir):
    from ray_apps.records import read_records

    records, _ = read_records(real_data / "parquet" / "eval")
    sampling = Sampling(temperature=0.9, top_p=0.95, samples=2)
    prompt = load_config(ROOT / "configs/tiny.yaml").train.simulator_prompt
    for model in (trained["usergpt"]["output"], str(smollm2_dir)):  # the simulator, and its untrained base
        scored = score_human_turns(model, records, 256, prompt, sampling)
        assert scored["perplexity"] > 1 and scored["tokens"] > 0
        termination = scored["termination"]["likelier"]
        assert termination["decisions"] >= len(records) and isinstance(termination["f1"], float), scored


@pytest.fixture(scope="module", params=["hf", "vllm"])
def served(request, trained, ray_session, tmp_path_factory):
    """Both exports behind one OpenAI-compatible app, on each engine in turn."""
    serve.shutdown()  # the session's hf app of the tiny models: one Serve instance has one HTTP port
    workdir = tmp_path_factory.mktemp(f"real-serve-{request.param}")
    models = (
        f"[{{name: usergpt, path: '{trained['usergpt']['output']}', num_cpus: 0.25}},"
        f" {{name: baseline, path: '{trained['assistant']['output']}', num_cpus: 0.25}}]"
    )
    config = _config(
        workdir,
        f"serve.engine={request.param}",
        f"serve.port={free_port()}",
        f"serve.models={models}",
        "serve.max_model_len=512",
        "serve.engine_kwargs={enforce_eager: true}",  # vLLM: torch.compile of 30 layers takes minutes on 2 CPUs
    )
    yield {"url": start_serve(config), "config": config, "workdir": workdir, "engine": request.param}
    serve.shutdown()


def test_the_exports_answer_on_both_engines_and_the_forced_end_marker_ends_sessions(served, trained):
    client = openai.OpenAI(base_url=served["url"], api_key="unused", max_retries=0)
    assert sorted(m.id for m in client.models.list()) == ["baseline", "usergpt"]
    answer = client.chat.completions.create(
        model="baseline",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        max_tokens=16,
        temperature=0,
    )
    # the export still knows what SmolLM2 knows: in Vicuna's format it answers, then goes on to write the next
    # "USER:" turn (a base model trained 2 steps has not learned to stop there)
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage.completion_tokens >= 1
    assert "Paris" in answer.choices[0].message.content, answer.choices[0].message.content
    marker = end_marker_id(load_tokenizer(trained["usergpt"]["output"]))
    ended = client.chat.completions.create(
        model="usergpt",
        messages=[{"role": "system", "content": "You are a user."}, {"role": "user", "content": "Hello!"}],
        max_tokens=2,
        temperature=0,
        logit_bias={str(marker): 100},
    )
    assert ended.choices[0].message.content.startswith(END_OF_CONVERSATION)

    seeds = served["workdir"] / "seeds.jsonl"
    questions = ["How do I sort a list?", "What is a closure?", "Why is the sky blue?"]
    seeds.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(questions)))
    rollout = _config(
        served["workdir"],
        f"serve.port={served['config'].serve.port}",
        f"serve.engine={served['engine']}",
        "rollout.mode=seeded",
        f"rollout.seeds={seeds}",
        f"rollout.user.tokenizer={trained['usergpt']['output']}",
        f"rollout.assistant.tokenizer={trained['assistant']['output']}",
        f"rollout.user.extra_body={{logit_bias: {{'{marker}': 100}}}}",
        "rollout.user.max_tokens=4",
        "rollout.assistant.max_tokens=16",
        "rollout.context_tokens=512",
        "rollout.actors=1",
    )
    summary = run_rollout(rollout)
    sessions = [
        json.loads(line) for line in (served["workdir"] / "realchat/data/sessions.jsonl").read_text().splitlines()
    ]
    assert len(sessions) == len(questions), summary
    for session in sessions:  # the seed's question, the assistant's answer, then the simulator ends the session
        assert session["meta"]["stop_reason"] == "end_marker", session
        assert [m["role"] for m in session["messages"]] == [USER, ASSISTANT]
