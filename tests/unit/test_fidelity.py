"""The simulator's fidelity figures on hand-made sessions whose answers are known, and the targets."""

import json

import pytest
import torch

from ray_apps.config import PipelineConfig
from ray_apps.eval.fidelity import compare_sessions, read_rollout
from ray_apps.eval.figures import FIGURES, Measured, check_targets, compare_simulators, values
from ray_apps.eval.scoring import Sampling, _f1, _sampled_probability, _turn_starts
from ray_apps.models.tokens import word_count


def _session(key, users, stop="end_marker", rejected=None, segment=None):
    messages = []
    for text in users:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": "An answer here."}]
    meta = {"stop_reason": stop, "rejected_user_turns": rejected or {}}
    if segment is not None:
        meta["segment"] = segment
    return {"id": key, "messages": messages, "meta": meta}


REAL = [
    _session("r1", ["How do I bake bread?", "Why does it rise?"], stop=None),
    _session("r2", ["What is git rebase?"], stop=None),
    _session("r3", ["How do I bake bread?", "And rye bread?", "Thanks!"], stop=None),
    _session("r3#1", ["A later segment does not open a conversation?"], stop=None, segment=1),
]


def test_rates_count_every_turn_the_simulator_wrote_including_resampled_ones():
    sessions = [
        _session("s1", ["How do I bake bread?", "Why?"], rejected={"role_flip": 1, "duplicate_opening": 1}),
        _session("s2", ["What is a rebase?"], stop="max_turns", rejected={"repeated_turn": 2}),
    ]
    failures = [{"id": "f1", "reason": "filtered_role_flip", "messages": [], "rejected_user_turns": {"role_flip": 4}}]
    got = compare_sessions(REAL, sessions, failures, word_count)
    # 3 kept user turns + 8 resampled ones = 11 written; 5 were role flips, 2 repeats
    assert got["user_turns_written"] == 11
    assert got["role_flip_rate"] == round(5 / 11, 4) and got["repeated_turn_rate"] == round(2 / 11, 4)
    assert got["resampled_user_turns"] == {"role_flip": 5, "repeated_turn": 2, "duplicate_opening": 1}
    assert got["end_marker_share"] == round(1 / 3, 4)  # of all sessions, failed ones included
    figures = values(Measured(sessions=got))
    # real: 7 user turns over 4 records (mean 1.75); simulated: 3 over 2 (1.5)
    assert figures["user_turns_ratio"] == round(1.5 / 1.75, 4)
    # openings: real "How do I bake bread?" twice + "What is git rebase?" (the later segment is not one);
    # simulated: two distinct, plus the rejected duplicate opening drawn before one of them
    assert got["opening_distinct_share"] == {"real": round(2 / 3, 4), "simulated": round(2 / 3, 4)}
    assert got["real"]["user_question_share"] == round(6 / 7, 4) and got["simulated"]["user_question_share"] == 1.0
    assert figures["question_share_ratio"] == round(1 / (6 / 7), 4)
    assert got["user_turns_wasserstein"] > 0 and got["user_utterance_length_wasserstein"] > 0
    assert figures["role_flip_rate"] == got["role_flip_rate"] and figures["opening_distinct_share"] == round(2 / 3, 4)
    assert figures["perplexity_ratio"] is None and figures["human_like_ratio"] is None  # not measured here


def test_identical_sessions_are_at_distance_zero_with_ratios_of_one():
    got = values(Measured(sessions=compare_sessions(REAL, REAL, [], word_count)))
    assert got["user_turns_wasserstein"] == 0 and got["user_utterance_length_wasserstein"] == 0
    assert got["user_utterance_length_ratio"] == got["user_turns_ratio"] == got["question_share_ratio"] == 1


BASE = {"perplexity": 30.0}


def _part(sessions, failures, perplexity, f1):
    compared = compare_sessions(REAL, sessions, failures, word_count)
    return Measured({"perplexity": perplexity, "termination": {"likelier": {"f1": f1}}}, BASE, compared)


def test_the_simulator_closer_to_the_real_people_is_named_figure_by_figure():
    # the trained one asks like the real people; the prompted one answers like an assistant and never ends
    asked = [[m["content"] for m in r["messages"] if m["role"] == "user"] for r in REAL[:3]]
    trained = _part([_session(f"t{i}", users) for i, users in enumerate(asked)], [], perplexity=3.0, f1=0.8)
    assistant_like = ["Sure! Here is a long answer about bread and how to bake it."] * 3
    prompted = _part(
        [_session(f"p{i}", assistant_like[:1], stop="max_turns", rejected={"role_flip": 2}) for i in range(3)],
        [],
        perplexity=20.0,
        f1=0.0,
    )
    rows = {row["figure"]: row for row in compare_simulators(trained, prompted)}
    for figure in ("user_utterance_length", "question_share", "end_marker_share", "termination_f1", "perplexity"):
        assert rows[figure]["closer"] == "trained", rows[figure]
    assert rows["role_flip_rate"]["prompted"] == 1.0 and rows["role_flip_rate"]["closer"] == "trained"
    length = rows["user_utterance_length"]
    assert length["real"] == trained.sessions["real"]["mean_user_utterance_length"]
    assert length["trained"] == trained.sessions["simulated"]["mean_user_utterance_length"]
    assert length["target"] == {"key": "user_utterance_length_ratio", "min": 0.67, "max": 1.5}
    assert length["met"] == {"trained": True, "prompted": False}
    # perplexity is judged as its ratio over the base's: 3 / 30 = 0.1 meets <= 0.15, 20 / 30 does not
    assert rows["perplexity"]["real"] is None and rows["perplexity"]["met"] == {"trained": True, "prompted": False}
    # a figure measured for neither is left out; one measured for one side names no closer simulator
    assert "human_like_ratio" not in rows
    prompted = prompted._replace(score=None)
    assert next(r for r in compare_simulators(trained, prompted) if r["figure"] == "perplexity")["closer"] is None


def test_a_rollout_directory_is_read_with_its_failures(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sessions.jsonl").write_text(json.dumps(REAL[0]) + "\n")
    (tmp_path / "failures.jsonl").write_text(json.dumps({"id": "f", "reason": "max_turns"}) + "\n")
    sessions, failures = read_rollout(tmp_path)
    assert [s["id"] for s in sessions] == ["r1"] and failures == [{"id": "f", "reason": "max_turns"}]


def test_termination_f1_counts_ends_called_too_early_and_missed():
    # two ends caught, one end called one turn early (a false positive and a miss), three right "go on"s
    decisions = [(True, True), (True, True), (True, False), (False, True), (False, False), (False, False)]
    assert _f1(decisions) == {
        "f1": round(4 / 6, 4),
        "precision": round(2 / 3, 4),
        "recall": round(2 / 3, 4),
        "decisions": 6,
    }
    assert _f1([(False, False)])["f1"] is None  # nothing to find and nothing found


def test_turn_starts_and_sampling():
    assert _turn_starts([0, 0, 1, 1, 0, 1, 0, 0, 1]) == [2, 5, 8]
    logits = torch.tensor([0.0, 5.0, 1.0])
    greedy = Sampling(temperature=0, top_p=1)
    assert [_sampled_probability(logits, t, greedy) for t in range(3)] == [0.0, 1.0, 0.0]
    # a nucleus of 0.5 keeps only the most probable token; a nucleus of 1 keeps the softmax at the temperature
    assert [_sampled_probability(logits, t, Sampling(temperature=1, top_p=0.5)) for t in range(3)] == [0.0, 1.0, 0.0]
    full = [_sampled_probability(logits, t, Sampling(temperature=2, top_p=1)) for t in range(3)]
    assert full == pytest.approx(torch.softmax(logits / 2, -1).tolist())
    # a nucleus of 0.99 keeps the two likeliest tokens (the first holds 0.98 of the mass) and renormalises them
    kept = [_sampled_probability(logits, t, Sampling(temperature=1, top_p=0.99)) for t in range(3)]
    p = torch.softmax(logits, -1)
    assert kept == pytest.approx([0.0, float(p[1] / (p[1] + p[2])), float(p[2] / (p[1] + p[2]))])


def test_targets_say_which_are_met_and_an_unmeasured_one_is_not():
    targets = [f for f in FIGURES if f.has_target]
    on_bounds = {f.key: f.check(f.low if f.low is not None else f.high) for f in targets}  # each exactly on its bound
    assert all(t["met"] for t in on_bounds.values())
    assert [f.key for f in targets if not f.check(None)["met"]] == [f.key for f in targets]
    assert not next(f for f in targets if f.key == "termination_f1").check(0.59)["met"]
    assert not next(f for f in targets if f.key == "role_flip_rate").check(0.06)["met"]
    # measured from a score alone: the score's targets are judged, the session figures' are not measured
    score = {"perplexity": 3.0, "termination": {"likelier": {"f1": 0.7}}}
    checked = check_targets(Measured(score, BASE))
    assert [k for k, t in checked.items() if t["met"]] == ["perplexity_ratio", "termination_f1"]
    assert checked["perplexity_ratio"]["value"] == 0.1 and checked["user_turns_ratio"]["value"] is None


def test_per_model_training_keys_replace_the_shared_ones_and_are_checked():
    train = PipelineConfig.model_validate({"train": {"num_epochs": 3, "models": {"usergpt": {"num_epochs": 8}}}}).train
    assert train.for_model("usergpt").num_epochs == 8 and train.for_model("baseline").num_epochs == 3
    assert train.for_model("usergpt").learning_rate == train.learning_rate
    with pytest.raises(ValueError, match="models.usergpt.epochs"):
        PipelineConfig.model_validate({"train": {"models": {"usergpt": {"epochs": 8}}}})
    with pytest.raises(ValueError, match="models.usergpt.num_epochs"):
        PipelineConfig.model_validate({"train": {"models": {"usergpt": {"num_epochs": 0}}}})


def _classifier(tmp_path, human_bias: float):
    """A tiny local human-vs-machine classifier whose verdict is its bias: no download, known answer."""
    from transformers import BertConfig, BertForSequenceClassification

    from ray_apps.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["How do I bake bread?", "Sure! Here is a recipe."] * 20, 300)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label={0: "Human", 1: "ChatGPT"},
        label2id={"Human": 0, "ChatGPT": 1},
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([human_bias, -human_bias]))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


def test_the_human_like_ratio_is_the_share_the_detector_calls_human(tmp_path):
    from ray_apps.errors import StartError
    from ray_apps.eval.detector import human_like_ratio

    texts = ["How do I bake bread?", "Why does it rise?", "Sure! Here is a recipe."]
    assert human_like_ratio(_classifier(tmp_path / "h", 5.0), texts, "human") == 1.0
    machine = _classifier(tmp_path / "m", -5.0)
    assert human_like_ratio(machine, texts, "Human") == 0.0
    with pytest.raises(StartError, match="eval.human_label: 'person' is not a label"):
        human_like_ratio(machine, texts, "person")


@pytest.mark.parametrize(
    "turn",
    [
        "Certainly! Here is a plan for your week.",
        "Hello! How can I assist you today?",
        "How may I help you with your garden?",
        "I'm a chatbot that is a special AI designed to assist.",
        "I'm an AI assistant, so I don't have a garden.",
        "As a language model, I cannot browse the web.",
        "I'm sorry, but I can't help with that.",
        "What do you mean? I'm here to help with anything and everything, from homework to everyday tasks.",
    ],
)
def test_a_user_turn_in_the_assistants_voice_is_a_role_flip(turn):
    """What an instruct model prompted to play the user writes when it slips (SmolLM2-135M-Instruct did)."""
    from ray_apps.user_turns import rejection

    assert rejection(turn, []) == "role_flip"


@pytest.mark.parametrize(
    "turn",
    [
        "How can I help my kid with maths homework?",
        "I'm sorry, I meant the other one. How long does it keep?",
        "I'm a teacher: how do I explain fractions?",
        "Hi, how can I keep basil alive indoors?",
    ],
)
def test_a_person_asking_is_not_a_role_flip(turn):
    from ray_apps.user_turns import rejection

    assert rejection(turn, []) is None
