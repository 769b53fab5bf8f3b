"""`realm eval stats` on a small hand-made dataset gives the hand-computed numbers."""

import json

import pytest
from lexicalrichness import LexicalRichness

from ray_apps.config import load_config
from ray_apps.conversation import END_OF_CONVERSATION
from ray_apps.eval.stats import run_stats
from ray_apps.records import read_records

SESSIONS = [
    {
        "id": "a",
        "messages": [
            {"role": "user", "content": "How do cats see at night?"},
            {"role": "assistant", "content": "Cats have a reflective layer behind the retina."},
            {"role": "user", "content": "Sure, here is a summary of that."},  # a role flip
            {"role": "assistant", "content": "Thanks."},
        ],
        "meta": {"stop_reason": "end_marker"},
    },
    {
        "id": "b",
        "messages": [
            {"role": "user", "content": "Tell me about dogs"},
            {"role": "assistant", "content": "Dogs are loyal."},
            {"role": "user", "content": "tell me about dogs"},  # repeats the first turn
            {"role": "assistant", "content": "Dogs are loyal animals."},
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": "Breeding."},
            {"role": "user", "content": END_OF_CONVERSATION},
        ],
    },
]


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "sim.jsonl"
    rows = [json.dumps(s) for s in SESSIONS] + ['{"id": "broken", "conversations": "nope"}']
    path.write_text("\n".join(rows) + "\n")
    return path


def test_stats_equal_hand_computed_values(dataset, tmp_path):
    config = load_config(None, [f"run.workdir={tmp_path / 'run'}"])
    summary = run_stats(config, [str(dataset), str(dataset)], ["real", "sim"], str(tmp_path / "out"))
    s = summary["stats"]["sim"]
    assert summary["length_unit"] == "words" and summary["topic_similarity_method"].startswith("TF-IDF")
    assert s["sessions"] == 2 and s["skipped_rows"] and sum(s["skipped_rows"].values()) == 1  # the bad row is reported
    assert s["mean_turns"] == 2.5  # (2 + 3) / 2; the end marker is not a turn
    user = [7, 9, 4, 4, 2]  # words and punctuation of each user turn
    assistant = [9, 2, 4, 5, 2]
    assert s["mean_user_utterance_length"] == pytest.approx(sum(user) / 5)
    assert s["mean_assistant_utterance_length"] == pytest.approx(sum(assistant) / 5)
    assert s["mean_session_length"] == pytest.approx((sum(user) + sum(assistant)) / 2)
    texts = [m["content"] for r in SESSIONS for m in r["messages"] if m["content"] != END_OF_CONVERSATION]
    words = " ".join(texts).lower().replace(",", " ").replace(".", " ").replace("?", " ").split()
    assert s["distinct_1"] == round(len(set(words)) / len(words), 4)
    assert s["user_question_share"] == 0.4 and s["user_role_flip_rate"] == 0.2 and s["user_repeated_turn_rate"] == 0.2
    assert s["end_marker_share"] == 1.0  # one by its stop reason, one by its last message
    mtld = [LexicalRichness(t).mtld(threshold=0.72) for t in texts]
    assert s["mtld"] == round(sum(mtld) / len(mtld), 4)
    assert s["topic_similarity"] == pytest.approx(summary["stats"]["real"]["topic_similarity"])
    out = tmp_path / "out"
    for name in (
        "stats.json",
        "stats.md",
        "turns.png",
        "user_utterances.png",
        "assistant_utterances.png",
        "report.html",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (
        "turns.png" in (out / "report.html").read_text()
        and "| mean_turns | 2.5 | 2.5 |" in (out / "stats.md").read_text()
    )


def test_topic_similarity_is_one_for_copies_and_zero_for_disjoint_topics(tmp_path):
    def write(name, texts):
        path = tmp_path / f"{name}.jsonl"
        path.write_text(
            "".join(
                json.dumps({"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": t}]}) + "\n"
                for t in texts
            )
        )
        return str(path)

    config = load_config(None, [f"run.workdir={tmp_path / 'run'}"])
    summary = run_stats(
        config,
        [write("same", ["red apples"] * 3), write("apart", ["red apples", "blue oceans", "green hills"])],
        output=str(tmp_path / "out"),
    )
    assert summary["stats"]["same"]["topic_similarity"] == pytest.approx(1.0)
    assert summary["stats"]["apart"]["topic_similarity"] == pytest.approx(0.0)


def test_prepared_and_rollout_layouts_are_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "parquet" / "train").mkdir(parents=True)
    table = pa.Table.from_pylist(
        [{"id": "x", "messages": SESSIONS[0]["messages"], "meta": json.dumps({"stop_reason": "max_turns"})}]
    )
    pq.write_table(table, tmp_path / "parquet" / "train" / "part.parquet")
    (tmp_path / "shards").mkdir()
    (tmp_path / "shards" / "s.jsonl").write_text("not a dataset\n")  # rollout shards are not data
    records, skipped = read_records(str(tmp_path))
    assert (
        [len(r["messages"]) for r in records] == [4]
        and records[0]["meta"] == {"stop_reason": "max_turns"}
        and not skipped
    )
