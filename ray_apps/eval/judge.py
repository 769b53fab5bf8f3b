"""`realm eval judge`: an LLM judge grades answers (single, 1-10) or compares two models' answers
(pairwise, both orders) with FastChat's judge prompts, reference answers for math, reasoning and
coding, and the multi-turn prompts for second turns. Writes FastChat's
``model_judgment/<judge>_single.jsonl`` / ``<judge>_pair.jsonl``; a rerun judges only what is missing."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from ..config import ConfigError, PipelineConfig
from ..endpoints import resolve_endpoint
from ..layout import RunLayout
from ..records import write_jsonl
from .answers import benchmarks
from .fastchat import (
    NEED_REFERENCE,
    answer_turns,
    answers_dir,
    failures_dir,
    judgments_dir,
    load_answers,
    load_judge_prompts,
    load_questions,
    pair_key,
    parse_rating,
    parse_winner,
    prompt_name,
    read_jsonl,
    render,
    single_key,
)
from .jobs import Chat, run_jobs


async def _verdict(
    chat: Chat, messages: list[dict], temperature: float, attempts: int, parse
) -> tuple[object, str, int]:
    """(parsed verdict or None, the last judgment, attempts used): asked again while unparseable."""
    for attempt in range(1, attempts + 1):
        judgment = await chat(messages, temperature)
        if (verdict := parse(judgment)) is not None:
            break
    return verdict, judgment, attempt


async def judge_single(chat: Chat, item: dict) -> dict:
    score, judgment, attempts = await _verdict(
        chat, item["messages"], item["temperature"], item["attempts"], parse_rating
    )
    record = {
        "question_id": item["question_id"],
        "model": item["model"],
        "judge": item["judge"],
        "user_prompt": item["messages"][1]["content"],
        "judgment": judgment,
        "score": -1 if score is None else score,
        "turn": item["turn"],
        "tstamp": time.time(),
    }
    if score is None:
        record["error"] = f"no [[rating]] in the judgment after {attempts} attempts"
    return record


async def judge_pair(chat: Chat, item: dict) -> dict:
    """Two games: model_1 as assistant A, then as B. FastChat's record: g1/g2 winners as model_1, model_2, tie
    or error."""
    (w1, j1, n1), (w2, j2, n2) = await asyncio.gather(
        *(
            _verdict(chat, item[g], item["temperature"], item["attempts"], parse_winner)
            for g in ("g1_messages", "g2_messages")
        )
    )
    g1 = {"A": "model_1", "B": "model_2"}.get(w1, w1 or "error")
    g2 = {"A": "model_2", "B": "model_1"}.get(w2, w2 or "error")
    record = {
        "question_id": item["question_id"],
        "model_1": item["model_1"],
        "model_2": item["model_2"],
        "g1_winner": g1,
        "g2_winner": g2,
        "judge": item["judge"],
        "g1_user_prompt": item["g1_messages"][1]["content"],
        "g1_judgment": j1,
        "g2_user_prompt": item["g2_messages"][1]["content"],
        "g2_judgment": j2,
        "turn": item["turn"],
        "tstamp": time.time(),
    }
    if "error" in (g1, g2):
        record["error"] = f"no [[A]]/[[B]]/[[C]] in the judgment after {max(n1, n2)} attempts"
    return record


def _games(config: PipelineConfig, answered: list[str], where: Path) -> list[tuple[str, ...]]:
    cfg = config.eval
    if not answered:
        raise ConfigError(f"eval.benchmarks: no answers in {where}; run `realm eval answers` first")
    models = cfg.models or answered
    if missing := [m for m in models if m not in answered]:
        raise ConfigError(
            f"eval.models: no answers of {missing} (answered: {answered}); run `realm eval answers` for them first"
        )
    if cfg.judge_mode == "single":
        return [(m,) for m in models]
    if cfg.judge_mode == "pairwise-all":
        return list(itertools.combinations(models, 2))
    if cfg.baseline_model not in answered:
        raise ConfigError(f"eval.baseline_model: {cfg.baseline_model!r} has no answers (answered: {answered})")
    return [(m, cfg.baseline_model) for m in models if m != cfg.baseline_model]


def run_judge(config: PipelineConfig, names: list[str] | None = None) -> dict:
    """Judge every game not judged yet (errors of earlier runs are judged again); returns counts."""
    cfg = config.eval
    if cfg.judge is None:
        raise ConfigError(
            "eval.judge: no judge configured (model, base_url, api_key_env of an OpenAI-compatible endpoint)"
        )
    if not cfg.judge_prompts:
        raise ConfigError("eval.judge_prompts: set the path of FastChat's judge_prompts.jsonl")
    prompts = load_judge_prompts(cfg.judge_prompts)
    selected = benchmarks(config, names)
    resolved = resolve_endpoint(config, cfg.judge, "eval.judge")
    kind = "single" if cfg.judge_mode == "single" else "pair"
    key, work = (single_key, judge_single) if kind == "single" else (pair_key, judge_pair)
    results = {}
    for bench in selected:
        root = RunLayout(config).bench(bench.name)
        answers = {p.stem: load_answers(p) for p in sorted(answers_dir(root).glob("*.jsonl"))}
        games = _games(config, sorted(answers), answers_dir(root))
        refs = load_answers(bench.reference_answers) if bench.reference_answers else {}
        out = judgments_dir(root) / f"{cfg.judge.model}_{kind}.jsonl"
        kept = [r for r in (read_jsonl(out) if out.exists() else []) if "error" not in r]
        write_jsonl(out, kept)
        done = {key(r) for r in kept}
        items, unanswered = [], 0
        for q in load_questions(bench.questions):
            qid, category = q["question_id"], q["category"]
            reference = answer_turns(refs[qid]) if category in NEED_REFERENCE and qid in refs else None
            for turn in range(1, min(len(q["turns"]), 2) + 1):
                name = prompt_name(kind, category, turn, reference is not None)
                if name not in prompts:
                    raise ConfigError(f"eval.judge_prompts: {cfg.judge_prompts} has no prompt named {name!r}")
                judge = [cfg.judge.model, name]
                for game in games:
                    turns = [answer_turns(answers[m][qid]) if qid in answers[m] else [] for m in game]
                    if any(len(t) < turn for t in turns):
                        unanswered += 1
                        continue
                    item = {
                        "question_id": qid,
                        "turn": turn,
                        "judge": judge,
                        "temperature": cfg.judge.temperature,
                        "attempts": 1 + cfg.parse_retries,
                    }
                    if kind == "single":
                        item |= {"model": game[0], "messages": render(prompts[name], q, turns, reference, turn)}
                    else:
                        item |= {
                            "model_1": game[0],
                            "model_2": game[1],
                            "g1_messages": render(prompts[name], q, turns, reference, turn),
                            "g2_messages": render(prompts[name], q, turns[::-1], reference, turn),
                        }
                    item["key"] = list(key(item))
                    if tuple(item["key"]) not in done:
                        items.append(item)
        failures = failures_dir(root) / f"judge-{cfg.judge.model}_{kind}.jsonl"
        counts = run_jobs(f"{bench.name} judgments", items, work, cfg.judge, resolved, cfg, out, failures)
        errors = sum(1 for r in read_jsonl(out) if "error" in r)
        counts |= {"judged_before": len(done), "unparseable": errors, "unanswered": unanswered}
        print(
            f"[eval judge] {bench.name}: {len(done)} judged before, {counts['done']} now ({errors} unparseable, "
            "recorded as errors), "
            f"{counts['failed']} failed, {unanswered} games skipped for missing answers -> {out}",
            flush=True,
        )
        results[bench.name] = counts
    return results
