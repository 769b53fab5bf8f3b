"""Evaluation end to end: answers against a loopback endpoint, the judge flows against a scripted fake
judge (position swap, ties, retries, resume), simulator perplexity (MT-Bench answers from the Serve app
are test_serve's)."""

import json

import pytest

from ray_apps.config import load_config
from ray_apps.eval import EvalError, run_answers, run_judge, run_show, run_simulator, run_stats
from ray_apps.eval.fastchat import load_answers, read_jsonl

from ..fake_judge import FakeJudge
from ..helpers import ROOT, SAMPLE, alive_governors, fastchat_show_result
from ..unit.test_config_extremes import CASES, _override

pytestmark = pytest.mark.integration

QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a poem.", "Make it shorter."]},
    {"question_id": 2, "category": "math", "turns": ["What is 6 x 7?", "And 6 x 8?"]},
    {"question_id": 3, "category": "generic", "turns": ["Say hello."]},
]
# What the scripted judge reacts to: GOOD, BAD, FLAKY (unparseable once), NEVER (always), BIAS (always [[A]]).
ANSWERS = {
    "alpha": {1: ["GOOD poem", "GOOD short poem"], 2: ["GOOD 42", "FLAKY 48"], 3: ["NEVER mind"]},
    "beta": {1: ["BAD poem", "BAD short poem"], 2: ["BAD 41", "BIAS 40"], 3: ["plain hello"]},
}


@pytest.fixture(scope="module")
def judge():
    fake = FakeJudge().start()
    yield fake
    fake.stop()


@pytest.fixture
def bench(tmp_path, benchmarks_dir, judge):
    """A hand-made question set with a reference answer for the math question, and two models' answers."""
    questions = tmp_path / "question.jsonl"
    questions.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    reference = tmp_path / "reference.jsonl"
    reference.write_text(
        json.dumps({"question_id": 2, "choices": [{"index": 0, "turns": ["REFERENCE 42", "REFERENCE 48"]}]}) + "\n"
    )
    answers = tmp_path / "eval" / "hand" / "model_answer"
    answers.mkdir(parents=True)
    for model, turns in ANSWERS.items():
        (answers / f"{model}.jsonl").write_text(
            "".join(
                json.dumps({"question_id": q, "model_id": model, "choices": [{"index": 0, "turns": t}]}) + "\n"
                for q, t in turns.items()
            )
        )
    benchmarks = f"[{{name: hand, questions: '{questions}', reference_answers: '{reference}'}}]"
    return [
        f"run.workdir={tmp_path}",
        f"eval.output={tmp_path / 'eval'}",
        f"eval.benchmarks={benchmarks}",
        f"eval.judge={{model: judge, base_url: '{judge.url}'}}",
        f"eval.judge_prompts={benchmarks_dir / 'judge_prompts.jsonl'}",
    ]


def _judge_calls(fake) -> int:
    return sum(r["model"] == "judge" for r in fake.requests)


def test_single_grading_retries_unparseable_verdicts_records_errors_and_resumes(ray_session, bench, judge, tmp_path):
    config = load_config(None, bench)
    before = _judge_calls(judge)
    counts = run_judge(config)["hand"]
    # alpha: 4 games + 1 retry for FLAKY + 3 attempts for NEVER; beta: 5 games
    assert _judge_calls(judge) - before == 13 and counts["unparseable"] == 1 and counts["done"] == 10
    out = tmp_path / "eval" / "hand" / "model_judgment" / "judge_single.jsonl"
    records = {(r["model"], r["question_id"], r["turn"]): r for r in read_jsonl(out)}
    assert records[("alpha", 3, 1)]["score"] == -1 and "error" in records[("alpha", 3, 1)]
    assert records[("alpha", 2, 2)]["score"] == 9.0  # FLAKY: parsed on the second attempt
    assert records[("beta", 1, 1)]["score"] == 3.0  # the [3] backup pattern
    math = records[("alpha", 2, 1)]
    assert math["judge"] == ["judge", "single-math-v1"] and "REFERENCE 42" in math["user_prompt"]
    assert records[("alpha", 2, 2)]["judge"] == ["judge", "single-math-v1-multi-turn"]
    assert (
        records[("beta", 1, 2)]["judge"] == ["judge", "single-v1-multi-turn"]
        and "BAD poem" in records[("beta", 1, 2)]["user_prompt"]
    )

    before = _judge_calls(judge)
    run_judge(config)  # only the error is judged again (3 attempts)
    assert _judge_calls(judge) - before == 3 and len(read_jsonl(out)) == 10

    shown = run_show([str(out)], str(tmp_path / "question.jsonl"), rounds=100)[str(out)]
    assert (shown["alpha"]["score"], shown["alpha"]["judgments"]) == (9.0, 4)
    assert (shown["beta"]["score"], shown["beta"]["turn_1"], shown["beta"]["turn_2"]) == (3.4, round(11 / 3, 4), 3.0)
    # FastChat's own show_result.py reads the file we wrote and finds the same numbers
    assert fastchat_show_result(out, "single") == {
        model: pytest.approx({k: r[k] for k in ("turn_1", "turn_2", "score")}, abs=1e-4) for model, r in shown.items()
    }


def test_pairwise_games_are_played_in_both_orders_and_disagreement_is_a_tie(ray_session, bench, judge, tmp_path):
    config = load_config(None, [*bench, "eval.judge_mode=pairwise-baseline", "eval.baseline_model=beta"])
    before = _judge_calls(judge)
    run_judge(config)
    # 4 games in two orders, FLAKY once more in each, NEVER 3 attempts in each
    assert _judge_calls(judge) - before == 4 * 2 + 2 + 2 * 3
    out = tmp_path / "eval" / "hand" / "model_judgment" / "judge_pair.jsonl"
    games = {(r["question_id"], r["turn"]): r for r in read_jsonl(out)}
    # alpha wins as A and as B
    assert (games[(1, 1)]["g1_winner"], games[(1, 1)]["g2_winner"]) == (
        "model_1",
        "model_1",
    )
    assert (games[(2, 2)]["g1_winner"], games[(2, 2)]["g2_winner"]) == ("model_1", "model_2")  # position bias
    assert games[(2, 1)]["judge"] == ["judge", "pair-math-v1"] and games[(3, 1)]["g1_winner"] == "error"
    shown = run_show([str(out)], baseline="beta", rounds=100)[str(out)]
    assert set(shown) == {"alpha"}
    alpha = shown["alpha"]
    assert (alpha["win"], alpha["loss"], alpha["tie"], alpha["win_rate_adjusted"]) == (3, 0, 1, 0.875)
    columns = ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted")
    assert fastchat_show_result(out, "pairwise-baseline", baseline="beta") == {
        "alpha": pytest.approx({k: alpha[k] for k in columns}, abs=1e-4)
    }
    before = _judge_calls(judge)
    run_judge(config)
    assert _judge_calls(judge) - before == 6  # resumed: only the unparseable game is played again


def test_judging_a_benchmark_without_answers_fails_naming_the_step_to_run(bench, tmp_path):
    from ray_apps.config import ConfigError

    for answers in (tmp_path / "eval" / "hand" / "model_answer").glob("*.jsonl"):
        answers.unlink()
    with pytest.raises(ConfigError, match="eval.benchmarks: no answers in .*realm eval answers"):
        run_judge(load_config(None, bench))


def test_answers_use_fastchat_temperatures_and_see_the_first_answer(ray_session, bench, judge, tmp_path):
    config = load_config(None, [*bench, f"eval.answer={{model: answerer, base_url: '{judge.url}', temperature: 0.3}}"])
    start, governors = len(judge.requests), alive_governors()
    run_answers(config)
    assert alive_governors() <= governors  # the run's own governor ended with it
    asked = [r for r in judge.requests[start:] if r["model"] == "answerer"]
    by_question = {r["messages"][0]["content"]: r for r in asked}
    assert len(asked) == 5
    assert [by_question[q]["temperature"] for q in ("Write a poem.", "What is 6 x 7?", "Say hello.")] == [0.7, 0.0, 0.3]
    second = next(r for r in asked if len(r["messages"]) == 3 and r["messages"][0]["content"] == "Write a poem.")
    assert second["messages"][1] == {"role": "assistant", "content": "Answer to: Write a poem."}
    answers = load_answers(tmp_path / "eval" / "hand" / "model_answer" / "answerer.jsonl")
    assert sorted(answers) == [1, 2, 3] and [len(a["choices"][0]["turns"]) for a in answers.values()] == [2, 2, 1]
    assert all(a["model_id"] == "answerer" and a["answer_id"] for a in answers.values())
    start = len(judge.requests)
    run_answers(config)
    assert not [r for r in judge.requests[start:] if r["model"] == "answerer"]  # nothing is answered twice


def test_too_many_failed_answers_or_judgments_exit_non_zero_after_writing_them(
    ray_session, bench, judge, tmp_path, capsys
):
    """An endpoint that answers without choices: every job is an internal error with its traceback, and the run fails
    past eval.max_failure_fraction (answers and judgments alike); allowing it, the same run passes."""
    answers = load_config(None, [*bench, f"eval.answer={{model: broken, base_url: '{judge.url}'}}"])
    with pytest.raises(EvalError, match=r"hand answers: 3 of 3 failed \(100\.0% > eval\.max_failure_fraction=0\.5\)"):
        run_answers(answers)
    assert "3 failed with internal_error" in capsys.readouterr().err
    failures = read_jsonl(tmp_path / "eval" / "hand" / "failures" / "answers-broken.jsonl")
    assert len(failures) == 3 and all(
        f["reason"] == "internal_error" and "IndexError" in f["traceback"] for f in failures
    )
    allowed = load_config(
        None, [*bench, f"eval.answer={{model: broken, base_url: '{judge.url}'}}", "eval.max_failure_fraction=1"]
    )
    assert run_answers(allowed)["hand"]["failed"] == 3
    judging = load_config(None, [*bench, f"eval.judge={{model: broken, base_url: '{judge.url}'}}"])
    with pytest.raises(EvalError, match=r"hand judgments: \d+ of \d+ failed \(100\.0% > eval\.max_failure_fraction"):
        run_judge(judging)


def test_the_trained_simulator_predicts_human_turns_better_than_the_base(
    usergpt, tiny_model_dir, prepared_sample, tmp_path
):
    config = load_config(
        ROOT / "configs/tiny.yaml",
        [
            f"run.workdir={tmp_path}",
            f"eval.simulator_model={usergpt['output']}",
            f"eval.simulator_base={tiny_model_dir}",
            f"eval.heldout={prepared_sample / 'parquet' / 'eval'}",
        ],
    )
    result = run_simulator(config)
    assert result["conversations"] > 0 and result["simulator"]["tokens"] == result["base"]["tokens"] > 0
    assert result["simulator"]["perplexity"] < result["base"]["perplexity"]
    assert result["perplexity_ratio"] == round(result["simulator"]["perplexity"] / result["base"]["perplexity"], 6)
    written = json.loads((tmp_path / "eval" / "simulator.json").read_text())
    assert written["simulator"]["perplexity"] == result["simulator"]["perplexity"]
    # every human turn after an answer is a decision to end or go on, the same ones for both models
    decisions = {role: result[role]["termination"] for role in ("simulator", "base")}
    assert decisions["simulator"]["likelier"]["decisions"] == decisions["base"]["top_token"]["decisions"] > 0
    assert decisions["simulator"]["sampled"]["decisions"] == 4 * decisions["simulator"]["likelier"]["decisions"]
    assert decisions["base"]["likelier"]["f1"] == 0  # the untrained base never ends a conversation
    # no rollout in this working directory: the session figures are not measured, and say so
    assert "sessions" not in written and written["targets"]["end_marker_share"]["value"] is None
    assert written["end_marker_share"] is None and written["user_turns_ratio"] is None
    assert not written["targets"]["end_marker_share"]["met"] and "termination_f1" in written["targets"]


# Each eval key at the ends of its range; a rate limit of one request in years is left to the rollout's run of it
# (one request per endpoint there: a benchmark sends several, and the limit makes them wait as told).
EXTREMES = [(k, v) for k, v in CASES if k.startswith("eval.") and not k.endswith("_per_minute")]


@pytest.mark.slow  # one run per value: 7 minutes in all, left out of `make test-fast`
@pytest.mark.parametrize(("key", "value"), EXTREMES, ids=[f"{k}={v}" for k, v in EXTREMES])
def test_answers_judgments_and_results_run_with_each_extreme_accepted_value(
    ray_session, bench, judge, key, value, tmp_path
):
    """The unit test loads each value; here answers, judgments, results and statistics run with it: every job ends
    written, or the run stops on the failures it allows, saying so; a sampling key reaches the requests."""
    answerer = f"eval.answer={{model: answerer, base_url: '{judge.url}'}}"
    config = load_config(None, [*bench, answerer, _override(key, value)])
    sent = len(judge.requests)
    for step in (run_answers, run_judge):
        try:
            assert step(config)["hand"]["done"] > 0
        except EvalError as exc:  # every request timed out, or the unparseable verdict is more than 0 allows
            assert "eval.max_failure_fraction" in str(exc) or "circuit breaker" in str(exc), exc
    judgments = tmp_path / "eval" / "hand" / "model_judgment" / "judge_single.jsonl"
    if judgments.is_file() and judgments.read_text():
        shown = run_show([str(judgments)], str(tmp_path / "question.jsonl"), rounds=config.eval.bootstrap_rounds)
        assert shown[str(judgments)]["beta"]["judgments"] > 0
    stats = run_stats(config, [str(SAMPLE / "sharegpt_sample.jsonl")], ["sample"], str(tmp_path / "stats"))
    assert stats["stats"]["sample"]["topic_similarity"] is not None
    section, leaf = key.split(".")[1], key.rsplit(".", 1)[1]
    if section in ("answer", "judge") and leaf in ("top_p", "max_tokens"):
        model = "answerer" if section == "answer" else "judge"
        assert {r[leaf] for r in judge.requests[sent:] if r["model"] == model} == {value}
