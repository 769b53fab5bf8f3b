"""The hf engine without Ray: continuous batching gives each sequence exactly what it would get alone."""

import pytest
import torch

from ray_apps.serve.engine import (
    DecodeBatch,
    GenerationRequest,
    HFEngine,
    SamplingParams,
    _held_back,
    _sample,
    _Sequence,
)

QUESTIONS = [
    "How do I sort a list in python?",
    "hi",
    "What is the capital of France, and why do so many visit it?",
    "Explain recursion.",
]


@pytest.fixture(scope="module")
def engine(offline_model_dir):
    torch.manual_seed(0)
    return HFEngine(str(offline_model_dir))


def _prompt(engine, question):
    text = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    return engine.tokenizer(text, add_special_tokens=False).input_ids


def _alone(engine, prompt, max_tokens):
    """The reference: transformers' own greedy generate, one sequence, no end token."""
    out = engine.model.generate(torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=False, eos_token_id=None)
    return engine.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True)


def _drain(batch, joins=None, steps=400):
    """Step ``batch``; ``joins`` maps a step number to requests that join before it. Returns texts and finishes."""
    texts, finishes = {}, {}
    for step in range(steps):
        for key, request in (joins or {}).get(step, []):
            batch.add([request], [key])
        for key, delta in batch.step():
            texts[key] = texts.get(key, "") + delta.text
            if delta.finish_reason:
                finishes[key] = delta.finish_reason
    return texts, finishes


def test_sequences_joining_and_leaving_mid_batch_decode_exactly_as_alone(engine, monkeypatch):
    # decode the full budget so every join, exit and cache trim happens
    monkeypatch.setattr(engine, "stop_ids", frozenset())
    lengths = [120, 30, 150, 100]
    prompts = [_prompt(engine, q) for q in QUESTIONS]
    greedy = [GenerationRequest(p, SamplingParams(max_tokens=n, temperature=0)) for p, n in zip(prompts, lengths)]
    # 0 starts alone; 1 and 2 join at step 3 (1 leaves early); 3 joins at step 100, after 1 left.
    texts, finishes = _drain(
        DecodeBatch(engine), {0: [(0, greedy[0])], 3: [(1, greedy[1]), (2, greedy[2])], 100: [(3, greedy[3])]}
    )
    for i, (prompt, n) in enumerate(zip(prompts, lengths)):
        assert texts[i] == _alone(engine, prompt, n), i
        assert finishes[i] == "length"


def test_seeded_sampling_does_not_depend_on_the_rest_of_the_batch(engine):
    prompt = _prompt(engine, QUESTIONS[0])
    seeded = GenerationRequest(prompt, SamplingParams(max_tokens=24, temperature=1.0, seed=7))
    alone, _ = _drain(DecodeBatch(engine), {0: [("a", seeded)]}, steps=30)
    others = [
        (i, GenerationRequest(_prompt(engine, q), SamplingParams(max_tokens=24, temperature=1.0)))
        for i, q in enumerate(QUESTIONS)
    ]
    crowded, _ = _drain(DecodeBatch(engine), {0: [("a", seeded), *others]}, steps=30)
    other_seed, _ = _drain(
        DecodeBatch(engine),
        {0: [("a", GenerationRequest(prompt, SamplingParams(max_tokens=24, temperature=1.0, seed=8)))]},
        steps=30,
    )
    assert alone["a"] == crowded["a"]
    assert alone["a"] != other_seed["a"]


def test_stop_strings_cut_the_text_and_are_never_streamed(engine, monkeypatch):
    monkeypatch.setattr(engine, "stop_ids", frozenset())
    prompt = _prompt(engine, QUESTIONS[2])
    full = _alone(engine, prompt, 60)
    stop = full[20:24]
    cut = full.index(stop)
    request = GenerationRequest(prompt, SamplingParams(max_tokens=60, temperature=0, stop=(stop, "never-in-text")))
    batch = DecodeBatch(engine)
    batch.add([request], ["k"])
    streamed = []
    while len(batch):
        streamed += [d for _, d in batch.step()]
    assert "".join(d.text for d in streamed) == full[:cut]
    assert streamed[-1].finish_reason == "stop" and all(d.finish_reason is None for d in streamed[:-1])
    assert sum(d.tokens for d in streamed) <= 60


def test_end_token_finishes_with_stop_and_counts_the_token(engine, monkeypatch):
    prompt = _prompt(engine, QUESTIONS[1])
    monkeypatch.setattr(engine, "stop_ids", frozenset())
    first = _drain(
        DecodeBatch(engine), {0: [("k", GenerationRequest(prompt, SamplingParams(max_tokens=1, temperature=0)))]}, 2
    )[0]["k"]
    token = engine.tokenizer(first, add_special_tokens=False).input_ids[0]
    monkeypatch.setattr(engine, "stop_ids", frozenset({token}))  # pretend the greedy first token is the end token
    batch = DecodeBatch(engine)
    batch.add([GenerationRequest(prompt, SamplingParams(max_tokens=10, temperature=0))], ["k"])
    [(key, delta)] = batch.step()
    assert (key, delta.text, delta.tokens, delta.finish_reason) == ("k", "", 1, "stop") and len(batch) == 0


def test_cancelled_sequences_leave_the_batch(engine):
    batch = DecodeBatch(engine)
    batch.add(
        [GenerationRequest(_prompt(engine, q), SamplingParams(max_tokens=50)) for q in QUESTIONS[:2]], ["keep", "gone"]
    )
    batch.step(cancelled={"gone"})
    assert batch.keys == ["keep"] and len(batch) == 1


def test_sampling_follows_temperature_and_top_p():
    logits = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).log()

    def frequencies(**params):
        seq = _Sequence(GenerationRequest([1], SamplingParams(max_tokens=1, **params)), None, frozenset())
        counts = torch.zeros(4)
        for _ in range(4000):
            counts[_sample(logits, [seq])[0]] += 1
        return (counts / counts.sum()).tolist()

    assert frequencies(temperature=0) == [0, 0, 1, 0]
    assert frequencies(temperature=1.0) == pytest.approx([0.1, 0.0, 0.6, 0.3], abs=0.03)
    # 0.1 is outside the nucleus
    assert frequencies(temperature=1.0, top_p=0.7) == pytest.approx([0.0, 0.0, 2 / 3, 1 / 3], abs=0.03)
    # logit_bias shifts a row's logits (100 forces a token; -100 all but bans one), and only that row's
    assert frequencies(temperature=0, logit_bias=((0, 100.0),)) == [1, 0, 0, 0]
    assert frequencies(temperature=1.0, logit_bias=((2, -100.0),)) == pytest.approx([0.25, 0.0, 0.0, 0.75], abs=0.03)
    plain = _Sequence(GenerationRequest([1], SamplingParams(max_tokens=1, temperature=0)), None, frozenset())
    forced = _Sequence(
        GenerationRequest([1], SamplingParams(max_tokens=1, temperature=0, logit_bias=((3, 100.0),))), None, frozenset()
    )
    assert _sample(torch.cat([logits, logits]), [plain, forced]) == [2, 3]
    broken = _Sequence(GenerationRequest([1], SamplingParams(max_tokens=1, top_p=0.5)), None, frozenset())
    assert _sample(torch.full((1, 4), float("nan")), [broken])[0] in range(4)  # a degenerate row ends, it does not loop


def test_a_tail_that_may_become_a_stop_string_is_held_back():
    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["world"]) == 0
    assert _held_back("ab", ["b", "abc"]) == 2


def test_a_next_turn_reuses_the_cached_prefix_and_decodes_the_same(offline_model_dir, monkeypatch):
    engine = HFEngine(str(offline_model_dir), prefix_cache_mb=64)
    monkeypatch.setattr(engine, "stop_ids", frozenset())
    first = _prompt(engine, QUESTIONS[0])
    batch = DecodeBatch(engine)
    batch.add([GenerationRequest(first, SamplingParams(max_tokens=20, temperature=0))], ["turn1"])
    while len(batch):
        batch.step()
    answer = engine.tokenizer(_alone(engine, first, 20), add_special_tokens=False).input_ids
    follow_up = engine.tokenizer(
        "<|im_end|>\n<|im_start|>user\nAnd in reverse order?<|im_end|>\n<|im_start|>assistant\n",
        add_special_tokens=False,
    ).input_ids
    second = first + answer + follow_up  # the session so far, resent as the next prompt
    texts, _ = _drain(
        batch, {0: [("turn2", GenerationRequest(second, SamplingParams(max_tokens=30, temperature=0)))]}, steps=40
    )
    assert engine.prefix_cache.hits == 1 and engine.prefix_cache.reused_tokens >= len(first) + 16
    assert texts["turn2"] == _alone(engine, second, 30)


def test_next_turns_of_several_sessions_join_in_one_prefill_and_decode_as_alone(offline_model_dir, monkeypatch):
    engine = HFEngine(str(offline_model_dir), prefix_cache_mb=64)
    monkeypatch.setattr(engine, "stop_ids", frozenset())
    follow_up = engine.tokenizer(
        "<|im_end|>\n<|im_start|>user\nWhy?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False
    ).input_ids

    def next_turn(prompt, max_tokens):
        return (
            prompt
            + engine.tokenizer(_alone(engine, prompt, max_tokens), add_special_tokens=False).input_ids
            + follow_up
        )

    def greedy(prompt, max_tokens):
        return GenerationRequest(prompt, SamplingParams(max_tokens=max_tokens, temperature=0))

    firsts, budgets = [_prompt(engine, q) for q in QUESTIONS[:3]], [20, 35, 10]
    _drain(DecodeBatch(engine), {0: [(i, greedy(p, n)) for i, (p, n) in enumerate(zip(firsts, budgets))]}, steps=40)
    seconds = [next_turn(p, n) for p, n in zip(firsts, budgets)]
    fresh = _prompt(engine, QUESTIONS[3])
    # A sequence is decoding when three cached prefixes of different lengths and a fresh prompt join together.
    joins = {
        0: [("running", greedy(fresh, 40))],
        2: [*((i, greedy(p, 25)) for i, p in enumerate(seconds)), ("fresh", greedy(fresh[:-3], 12))],
    }
    batch = DecodeBatch(engine)
    texts, _ = _drain(batch, joins, steps=60)
    assert engine.prefix_cache.hits == 3
    assert [texts[i] for i in range(3)] == [_alone(engine, p, 25) for p in seconds]
    assert (texts["running"], texts["fresh"]) == (_alone(engine, fresh, 40), _alone(engine, fresh[:-3], 12))
    # The third turn reuses the second, whose cached keys had a gap between the prefix and the new tokens.
    third, reused = next_turn(seconds[0], 25), engine.prefix_cache.reused_tokens
    texts, _ = _drain(batch, {0: [("third", greedy(third, 15))]}, steps=20)
    assert engine.prefix_cache.hits == 4 and engine.prefix_cache.reused_tokens - reused >= len(seconds[0])
    assert texts["third"] == _alone(engine, third, 15)
