"""`realm eval answers`: a model's answers to FastChat question sets (MT-Bench's second turn sees the
first answer), with FastChat's per-category temperatures, written as ``model_answer/<model>.jsonl``."""

from __future__ import annotations

from pathlib import Path

from ..config import BenchmarkConfig, ConfigError, PipelineConfig
from ..rollout.driver import resolve_endpoint
from ..rollout.store import write_jsonl
from .calls import Chat, run_jobs
from .fastchat import CATEGORY_TEMPERATURE, answer_record, load_answers, load_questions


async def answer_question(chat: Chat, item: dict) -> dict:
    """Every turn of one question, each asked after the answers to the ones before."""
    messages, turns = [], []
    for text in item["question"]["turns"]:
        messages.append({"role": "user", "content": text})
        turns.append(await chat(messages, item["temperature"]))
        messages.append({"role": "assistant", "content": turns[-1]})
    return answer_record(item["question"]["question_id"], item["model"], turns)


def benchmarks(config: PipelineConfig, names: list[str] | None) -> list[BenchmarkConfig]:
    """The configured benchmarks named in ``names`` (all when empty); an unknown name fails naming eval.benchmarks."""
    known = {b.name: b for b in config.eval.benchmarks}
    if not known:
        raise ConfigError("eval.benchmarks: no benchmark configured (name, questions: a FastChat question.jsonl)")
    if unknown := [n for n in names or () if n not in known]:
        raise ConfigError(f"eval.benchmarks: no benchmark named {unknown} (configured: {sorted(known)})")
    return [known[n] for n in names] if names else list(known.values())


def bench_dir(config: PipelineConfig, bench: BenchmarkConfig) -> Path:
    return Path(config.eval.output or Path(config.run.workdir) / "eval") / bench.name


def run_answers(config: PipelineConfig, names: list[str] | None = None, model: str | None = None) -> dict:
    """Answer every question not answered yet; returns per-benchmark counts."""
    cfg = config.eval
    endpoint = cfg.answer.model_copy(update={"model": model}) if model else cfg.answer
    selected = benchmarks(config, names)
    url = resolve_endpoint(config, endpoint, "eval.answer")["base_url"]
    results = {}
    for bench in selected:
        questions = load_questions(bench.questions)
        out = bench_dir(config, bench) / "model_answer" / f"{endpoint.model}.jsonl"
        done = load_answers(out) if out.exists() else {}
        write_jsonl(out, list(done.values()))  # drops a line a killed run left half-written
        items = [{"key": q["question_id"], "question": q, "model": endpoint.model,
                  "temperature": CATEGORY_TEMPERATURE.get(q["category"], endpoint.temperature)}
                 for q in questions if q["question_id"] not in done]  # fmt: skip
        failures = bench_dir(config, bench) / "failures" / f"answers-{endpoint.model}.jsonl"
        counts = run_jobs(f"{bench.name} answers", items, answer_question, endpoint, url, cfg, out, failures)
        counts["answered_before"] = len(done)
        print(f"[eval answers] {bench.name}: {len(done)} answered before, {counts['done']} now, {counts['failed']} failed"
              f"{f' (see {failures})' if counts['failed'] else ''} -> {out}", flush=True)  # fmt: skip
        results[bench.name] = counts
    return results
