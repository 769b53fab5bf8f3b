"""FastChat's llm_judge formats, read and written only here: questions, model answers, judge prompts,
verdicts and judgment records, so files move between this project and FastChat's tools unchanged."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from ..errors import RealmError
from ..records import read_rows

#: FastChat's sampling temperature per question category; others get ``eval.answer.temperature``.
CATEGORY_TEMPERATURE = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
#: Categories judged against a reference answer when one is given.
NEED_REFERENCE = ("math", "reasoning", "coding")

_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


class FormatError(RealmError, ValueError):
    """A FastChat file that cannot be used; the message names the file and line."""


def answers_dir(bench: Path) -> Path:
    """``model_answer/``: one ``<model>.jsonl`` per model, under a benchmark's directory."""
    return bench / "model_answer"


def judgments_dir(bench: Path) -> Path:
    """``model_judgment/``: ``<judge>_single.jsonl`` and ``<judge>_pair.jsonl``."""
    return bench / "model_judgment"


def results_file(bench: Path) -> Path:
    """`realm eval show`'s scores of every judgment file of the benchmark (ours)."""
    return bench / "results.json"


def failures_dir(bench: Path) -> Path:
    """Requests that failed after their retries, per task (ours; FastChat has none)."""
    return bench / "failures"


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict]:
    """Records of a JSONL file; a line that is not JSON or lacks a required field fails naming it.
    A last line cut short (a killed writer) is ignored."""
    rows, records = list(read_rows(path)), []
    for number, record, problem in rows:
        if problem:
            if number == rows[-1][0]:
                break
            raise FormatError(f"{path}:{number}: not a JSON object ({problem})")
        if missing := [k for k in required if k not in record]:
            raise FormatError(f"{path}:{number}: missing {', '.join(missing)}")
        records.append(record)
    return records


def load_questions(path: str | Path) -> list[dict]:
    return read_jsonl(path, ("question_id", "category", "turns"))


def load_answers(path: str | Path) -> dict[int, dict]:
    """question_id -> answer record, from a model_answer (or reference_answer) file."""
    return {r["question_id"]: r for r in read_jsonl(path, ("question_id", "choices"))}


def load_judge_prompts(path: str | Path) -> dict[str, dict]:
    return {
        r["name"]: r for r in read_jsonl(path, ("name", "type", "system_prompt", "prompt_template", "output_format"))
    }


def answer_turns(record: dict) -> list[str]:
    return record["choices"][0]["turns"]


def answer_record(question_id: int, model: str, turns: list[str]) -> dict:
    return {
        "question_id": question_id,
        "answer_id": uuid.uuid4().hex[:22],
        "model_id": model,
        "choices": [{"index": 0, "turns": turns}],
        "tstamp": time.time(),
    }


def prompt_name(kind: str, category: str, turn: int, has_reference: bool) -> str:
    """FastChat's judge prompt for a game: single-v1, single-math-v1-multi-turn, pair-v2, pair-math-v1, ..."""
    math = has_reference and category in NEED_REFERENCE
    name = {"single": "single-math-v1" if math else "single-v1", "pair": "pair-math-v1" if math else "pair-v2"}[kind]
    return name + ("-multi-turn" if turn == 2 else "")


def render(
    prompt: dict, question: dict, answers: list[list[str]], reference: list[str] | None, turn: int
) -> list[dict]:
    """The judge's messages: the prompt's system message and its template filled for one game.
    ``answers`` holds one model's turns (single) or those of assistants A and B (pair)."""
    fields = {f"ref_answer_{i}": text for i, text in enumerate(reference or [], 1)}
    q = question["turns"]
    if len(answers) == 1:
        a = answers[0]
        fields |= (
            {"question": q[0], "answer": a[0]}
            if turn == 1
            else {"question_1": q[0], "question_2": q[1], "answer_1": a[0], "answer_2": a[1]}
        )
    else:
        a, b = answers
        fields |= (
            {"question": q[0], "answer_a": a[0], "answer_b": b[0]}
            if turn == 1
            else {
                "question_1": q[0],
                "question_2": q[1],
                "answer_a_1": a[0],
                "answer_b_1": b[0],
                "answer_a_2": a[1],
                "answer_b_2": b[1],
            }
        )
    return [
        {"role": "system", "content": prompt["system_prompt"]},
        {"role": "user", "content": prompt["prompt_template"].format(**fields)},
    ]


def parse_rating(judgment: str) -> float | None:
    """The 1-10 rating in ``[[r]]`` (or, failing that, ``[r]``), as FastChat reads it; None if absent."""
    match = _RATING.search(judgment) or _RATING_BACKUP.search(judgment)
    return float(match.group(1)) if match else None


def parse_winner(judgment: str) -> str | None:
    """ "A", "B" or "tie" from ``[[A]]`` / ``[[B]]`` / ``[[C]]``, as FastChat reads it; None if absent."""
    for mark, winner in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if mark in judgment:
            return winner
    return None


def single_key(record: dict) -> tuple:
    return record["question_id"], record["model"], record["turn"]


def pair_key(record: dict) -> tuple:
    return record["question_id"], record["model_1"], record["model_2"], record["turn"]
