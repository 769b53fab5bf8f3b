"""`realm eval answers`: a model's answers to FastChat question sets (MT-Bench's second turn sees the
first answer), with FastChat's per-category temperatures, written as ``model_answer/<model>.jsonl``."""

from __future__ import annotations

from ..config import BenchmarkConfig, ConfigError, PipelineConfig
from ..endpoints import resolve_endpoint
from ..layout import RunLayout
from ..records import write_jsonl
from .fastchat import CATEGORY_TEMPERATURE, answer_record, answers_dir, failures_dir, load_answers, load_questions
from .jobs import Chat, run_jobs


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


def run_answers(config: PipelineConfig, names: list[str] | None = None, model: str | None = None) -> dict:
    """Answer every question not answered yet; returns per-benchmark counts."""
    cfg = config.eval
    endpoint = cfg.answer.model_copy(update={"model": model}) if model else cfg.answer
    selected = benchmarks(config, names)
    resolved = resolve_endpoint(config, endpoint, "eval.answer")
    results = {}
    for bench in selected:
        questions = load_questions(bench.questions)
        root = RunLayout(config).bench(bench.name)
        out = answers_dir(root) / f"{endpoint.model}.jsonl"
        done = load_answers(out) if out.exists() else {}
        write_jsonl(out, list(done.values()))  # drops a line a killed run left half-written
        items = [
            {
                "key": q["question_id"],
                "question": q,
                "model": endpoint.model,
                "temperature": CATEGORY_TEMPERATURE.get(q["category"], endpoint.temperature),
            }
            for q in questions
            if q["question_id"] not in done
        ]
        failures = failures_dir(root) / f"answers-{endpoint.model}.jsonl"
        counts = run_jobs(f"{bench.name} answers", items, answer_question, endpoint, resolved, cfg, out, failures)
        counts["answered_before"] = len(done)
        print(
            f"[eval answers] {bench.name}: {len(done)} answered before, {counts['done']} now, {counts['failed']} failed"
            f"{f' (see {failures})' if counts['failed'] else ''} -> {out}",
            flush=True,
        )
        results[bench.name] = counts
    return results
