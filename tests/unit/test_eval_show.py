"""`realm eval show` on hand-made FastChat judgment files gives the hand-computed numbers."""

import json
from pathlib import Path

import pytest

from ray_apps.eval.fastchat import (
    CATEGORY_TEMPERATURE,
    NEED_REFERENCE,
    answer_turns,
    load_answers,
    load_judge_prompts,
    load_questions,
    parse_rating,
    parse_winner,
    prompt_name,
    render,
)
from ray_apps.eval.show import pair_results, run_show, single_results


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_verdicts_are_parsed_as_fastchat_does():
    assert parse_rating("so [[8.5]] overall") == 8.5
    assert parse_rating("Rating: [7]") == 7.0
    assert parse_rating("[[9]] then [2]") == 9.0  # the double-bracket pattern wins
    assert parse_rating("eight out of ten") is None
    assert [parse_winner(t) for t in ("[[A]]", "x [[B]]", "[[C]]", "A is better")] == ["A", "B", "tie", None]


def test_reference_prompts_for_math_reasoning_coding_and_multi_turn_names():
    assert prompt_name("single", "math", 1, True) == "single-math-v1"
    assert prompt_name("single", "math", 2, False) == "single-v1-multi-turn"  # no reference answer: the general prompt
    assert prompt_name("pair", "coding", 2, True) == "pair-math-v1-multi-turn"
    assert prompt_name("pair", "writing", 1, True) == "pair-v2"


def test_single_scores_per_turn_category_and_overall(tmp_path):
    rows = [
        {"question_id": 1, "model": "m", "score": 8, "turn": 1},
        {"question_id": 1, "model": "m", "score": 6, "turn": 2},
        {"question_id": 2, "model": "m", "score": 4, "turn": 1},
        {"question_id": 2, "model": "m", "score": -1, "turn": 2},
        {"question_id": 1, "model": "n", "score": 10, "turn": 1},
    ]
    path = _write(tmp_path / "gpt-4_single.jsonl", rows)
    questions = _write(
        tmp_path / "question.jsonl",
        [
            {"question_id": 1, "category": "writing", "turns": ["a", "b"]},
            {"question_id": 2, "category": "math", "turns": ["c", "d"]},
        ],
    )
    result = run_show([path], questions, output=str(tmp_path / "out.json"), rounds=200)[path]
    m = result["m"]
    assert (m["score"], m["turn_1"], m["turn_2"], m["judgments"]) == (6.0, 6.0, 6.0, 3)  # the -1 is left out
    assert m["categories"] == {"math": 4.0, "writing": 7.0}
    assert 4.0 <= m["ci95"][0] <= 6.0 <= m["ci95"][1] <= 8.0
    assert result["n"]["score"] == 10.0 and result["n"]["ci95"] == [10.0, 10.0]
    assert json.loads((tmp_path / "out.json").read_text())[path]["m"]["score"] == 6.0


def test_pairwise_disagreement_is_a_tie_and_errors_are_left_out():
    def game(g1, g2, m1="a", m2="base"):
        return {"question_id": 1, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2, "turn": 1}

    games = [
        game("model_1", "model_1"),
        game("model_1", "model_1"),
        game("model_2", "model_2"),
        game("model_1", "model_2"),
        game("tie", "tie"),
        game("error", "model_1"),
        game("model_1", "model_1", "a", "c"),
    ]
    result = pair_results(games, baseline="base", rounds=200)
    assert set(result) == {"a"}  # the baseline is not a row; the game against c is not counted
    a = result["a"]
    assert (a["win"], a["loss"], a["tie"]) == (2, 1, 2)
    assert (a["win_rate"], a["loss_rate"], a["win_rate_adjusted"]) == (0.4, 0.2, 0.6)
    everyone = pair_results(games, rounds=200)
    assert (everyone["a"]["win"], everyone["c"]["loss"], everyone["base"]["win"]) == (3, 1, 1)
    assert single_results([], rounds=10) == {}


@pytest.mark.parametrize("bad", ['{"question_id": 1, "model": "m"', "not json"])
def test_a_broken_line_fails_naming_the_file_unless_it_is_the_last(tmp_path, bad):
    from ray_apps.eval.fastchat import FormatError, read_jsonl

    path = tmp_path / "j.jsonl"
    path.write_text('{"question_id": 1}\n' + bad + "\n")
    assert read_jsonl(path) == [{"question_id": 1}]  # a cut last line (a killed writer) is ignored
    path.write_text(bad + '\n{"question_id": 1}\n')
    with pytest.raises(FormatError, match=f"{path}:1"):
        read_jsonl(path)


def test_the_benchmark_fixtures_read_and_render_as_fastchat_files_do():
    """The project's own MT-Bench fixtures (a fresh clone's suite uses them) fill every judge prompt a game can ask
    for, in FastChat's formats: every category, two turns, references where FastChat's math prompts need them."""
    fixtures = Path(__file__).parents[1] / "fixtures" / "benchmarks"
    questions = load_questions(fixtures / "mt_bench" / "question.jsonl")
    references = load_answers(fixtures / "mt_bench" / "reference_answer.jsonl")
    prompts = load_judge_prompts(fixtures / "judge_prompts.jsonl")
    assert {q["category"] for q in questions} == set(CATEGORY_TEMPERATURE) and all(
        len(q["turns"]) == 2 for q in questions
    )
    assert {q["question_id"] for q in questions if q["category"] in NEED_REFERENCE} == set(references)
    for q in questions:
        reference = answer_turns(references[q["question_id"]]) if q["question_id"] in references else None
        for kind, answers in (("single", [["one", "two"]]), ("pair", [["a1", "a2"], ["b1", "b2"]])):
            for turn in (1, 2):
                prompt = prompts[prompt_name(kind, q["category"], turn, reference is not None)]
                system, user = render(prompt, q, answers, reference, turn)
                assert system["content"] and q["turns"][turn - 1] in user["content"] and "{" not in user["content"]
                assert all(answer[turn - 1] in user["content"] for answer in answers)
