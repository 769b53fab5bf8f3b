from collections import Counter

import pytest

from ray_apps.config import DedupConfig, PrepareConfig, SegmentConfig
from ray_apps.conversation import RecordError, make_record, message, simulator_view
from ray_apps.data import clean
from ray_apps.data.dedup import find_duplicates, sketch
from ray_apps.data.language import detect_language
from ray_apps.data.segment import segment, split_of
from ray_apps.models.tokens import approximate_token_count

CFG = PrepareConfig()


def rec(*turns, id="r", system=None):
    roles = ["user", "assistant"]
    msgs = ([message("system", system)] if system else []) + [message(roles[i % 2], t) for i, t in enumerate(turns)]
    return make_record(id, msgs)


def test_html_becomes_markdown_only_for_configured_roles():
    html = (
        '<div class="markdown"><p>Use <code>git rebase</code>:</p><ol><li>fetch</li><li>rebase</li></ol>'
        "<pre><code>git fetch</code></pre></div>"
    )
    record = make_record("h", [message("user", "<p>keep my tags</p>"), message("assistant", html)])
    fixes = Counter()
    out = clean.clean_text(record, CFG, fixes)
    assert out["messages"][0]["content"] == "<p>keep my tags</p>"
    answer = out["messages"][1]["content"]
    assert "<" not in answer and "`git rebase`" in answer and "1. fetch" in answer and "git fetch" in answer
    assert fixes == {"html_to_markdown": 1}


def test_whitespace_is_normalised_but_indentation_kept():
    text = "\ufeffline one  \r\n\r\n\r\n\r\n    indented\u200b code\u00a0here\n\n"
    assert clean.normalize_whitespace(text) == "line one\n\n    indented code here"


def test_structure_merges_runs_drops_leading_assistant_and_empty():
    record = make_record(
        "s",
        [
            message("system", "sys"),
            message("assistant", "Hi, how can I help?"),
            message("user", "part one"),
            message("user", "part two"),
            message("assistant", ""),
            message("assistant", "answer"),
        ],
    )
    fixes = Counter()
    out = clean.fix_structure(record, CFG, fixes)
    assert out["messages"] == [
        message("system", "sys"),
        message("user", "part one\n\npart two"),
        message("assistant", "answer"),
    ]
    assert fixes == {"leading_assistant_dropped": 1, "merged_messages": 1, "empty_message_dropped": 1}


def test_structure_rejects_what_does_not_alternate():
    record = make_record("n", [message("user", "q"), message("system", "mid"), message("assistant", "a")])
    with pytest.raises(RecordError, match="not_alternating"):
        clean.fix_structure(record, CFG, Counter())
    no_merge = CFG.model_copy(update={"merge_consecutive": False})
    unmerged = make_record("u", [message("user", "q"), message("user", "q2"), message("assistant", "a")])
    with pytest.raises(RecordError, match="not_alternating"):
        clean.fix_structure(unmerged, no_merge, Counter())
    with pytest.raises(RecordError, match="empty"):
        clean.fix_structure(make_record("e", [message("assistant", "hello")]), CFG, Counter())


def test_length_filters():
    clean.check_length(rec("What is a monad?", "A monoid in the category of endofunctors."), CFG)
    with pytest.raises(RecordError, match="too_short"):
        clean.check_length(rec("hi", "yo"), CFG)
    with pytest.raises(RecordError, match="too_few_turns"):
        clean.check_length(rec("a question with no answer at all"), CFG)
    with pytest.raises(RecordError, match="too_few_turns"):
        clean.check_length(rec("q" * 20, "a" * 20), CFG.model_copy(update={"min_turns": 2}))


def test_blocklist_is_case_insensitive():
    record = rec("Who are you?", "As an AI Language Model, I cannot.")
    clean.check_blocklist(record, [])
    with pytest.raises(RecordError, match="blocklisted"):
        clean.check_blocklist(record, ["as an ai language model"])


def test_language_keeps_english_with_curly_quotes_and_emoji():
    lang, conf = detect_language("Here’s my résumé summary — “data engineer”. Could you improve it? 🙏😊 Thanks!")
    assert lang == "en" and conf > 0.5
    assert detect_language("¿Cómo puedo mejorar mi pronunciación en inglés todos los días?")[0] == "es"
    assert detect_language("```python\nprint('x')\n```  ok")[0] == "und"  # code only: undetermined, not dropped


DEDUP = DedupConfig(min_first_turn_words=4)


def _sketches(records):
    return [{"key": r["id"], "id": r["id"], **sketch(r, DEDUP)} for r in records]


def test_exact_duplicates_ignore_case_and_spacing_first_one_kept():
    a = rec("How do I sort a list in Python?", "Use sorted(items).", id="a")
    b = rec("how do i sort a LIST in python ??  ", "Use sorted(items)!", id="b")
    c = rec("How do I sort a dict in Python?", "Use sorted(d.items()).", id="c")
    dups = find_duplicates(_sketches([a, b, c]), DEDUP)
    assert dups == {"b": ("exact_duplicate", "of a")}


def test_near_duplicates_by_first_turn_and_by_whole_conversation():
    question = "Can you explain the difference between a process and a thread in operating systems with an example"
    answer = " ".join(f"word{i}" for i in range(200))
    a = rec(question, "Processes have separate memory; threads share it.", id="a")
    b = rec(question + " please", "Totally different answer about scheduling and memory.", id="b")
    c = rec("First question here about cooking pasta", answer, id="c")
    d = rec("Another opening about baking bread at home", answer + " extra", id="d")
    e = rec("Unrelated question about the history of Rome and its emperors", "Augustus was first.", id="e")
    dups = find_duplicates(_sketches([a, b, c, d, e]), DEDUP)
    assert dups == {"b": ("near_duplicate_first_turn", "of a"), "d": ("near_duplicate_conversation", "of c")}


def test_duplicate_ids_are_reported():
    a = rec("What is the boiling point of water at sea level?", "100 °C.", id="same")
    b = rec("Who painted the Mona Lisa in the sixteenth century?", "Leonardo da Vinci.", id="same")
    keyed = [{**s, "key": k} for s, k in zip(_sketches([a, b]), ("k1", "k2"))]
    assert find_duplicates(keyed, DEDUP) == {"k2": ("duplicate_id", "id 'same' already kept")}


def test_segments_respect_the_budget_start_with_user_and_keep_system():
    turns = [f"turn {i} " + "word " * 30 for i in range(10)]
    record = rec(*turns, system="Be helpful.")
    cfg = SegmentConfig(max_tokens=150, overhead_tokens=4)
    count = approximate_token_count
    segments, dropped = segment(record, cfg, count, simulator_prompt="Ask.")
    assert dropped == 0 and len(segments) > 1
    for i, seg in enumerate(segments):
        assert seg["messages"][0] == message("system", "Be helpful.")
        assert seg["messages"][1]["role"] == "user"
        assert sum(count(m["content"]) + 4 for m in seg["messages"]) <= 150
        assert seg["meta"]["ended_naturally"] is (i == len(segments) - 1)
        assert seg["id"] == f"r#{i}"
    rebuilt = [m for seg in segments for m in seg["messages"][1:]]
    assert rebuilt == record["messages"][1:]


def test_a_last_unanswered_user_turn_stays_with_the_exchange_before_it():
    """Alone it would be a segment without an answer: nothing for the assistant to learn, a "thanks" opening."""
    record = rec("question " * 6, "answer " * 12, "Thanks!")
    # the exchange takes 44 tokens, the thanks 7 more; the user view's prompt and end-marker turn take 18
    budget = SegmentConfig(max_tokens=66, overhead_tokens=4)
    segments, dropped = segment(record, budget, approximate_token_count, simulator_prompt="Ask.")
    assert dropped == 0 and len(segments) == 1 and segments[0]["meta"]["ended_naturally"]
    assert [m["content"] for m in segments[0]["messages"]] == [m["content"] for m in record["messages"]]


def test_an_exchange_over_budget_is_dropped_and_counted():
    record = rec("short q", "short a", "long " * 500, "long answer", "q3", "a3")
    segments, dropped = segment(record, SegmentConfig(max_tokens=64), approximate_token_count, simulator_prompt="Ask.")
    assert dropped == 1
    assert [s["messages"][0]["content"] for s in segments] == ["short q", "q3"]
    with pytest.raises(RecordError, match="exchange_over_max_tokens"):
        segment(rec("long " * 500, "a"), SegmentConfig(max_tokens=64), approximate_token_count)


def test_segments_fit_the_budget_in_the_simulators_view_too():
    """UserGPT trains on the user view: the simulator's prompt in place of the system prompt, and the end-marker
    turn after the last human turn, where the marker would be cut off first."""
    record = rec(*[f"turn {i} " + "word " * 30 for i in range(10)])  # no system prompt of its own
    count = approximate_token_count
    segments, _ = segment(record, SegmentConfig(max_tokens=150, overhead_tokens=4), count)
    assert len(segments) > 1
    for seg in segments:
        view = simulator_view(seg["messages"], end_marker=True)
        assert sum(count(m["content"]) + 4 for m in view) <= 150


def test_a_short_conversation_is_one_segment_with_its_own_id():
    segments, _ = segment(rec("q", "a"), SegmentConfig(), approximate_token_count)
    assert len(segments) == 1 and segments[0]["id"] == "r" and segments[0]["meta"]["ended_naturally"]


def test_split_is_deterministic_and_near_the_fraction():
    splits = [split_of(f"id-{i}", 0.1) for i in range(5000)]
    assert splits == [split_of(f"id-{i}", 0.1) for i in range(5000)]
    assert 0.08 < splits.count("eval") / 5000 < 0.12
    assert all(split_of(f"id-{i}", 0.0) == "train" for i in range(100))
