import json

import pytest

from ray_apps.conversation import (
    END_OF_CONVERSATION,
    RecordError,
    from_sharegpt,
    parse_sharegpt,
    split_sharegpt,
    swap_roles,
    to_sharegpt,
    write_sharegpt,
)

SHAREGPT = {
    "id": "abc",
    "conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "What is 2+2?"},
        {"from": "gpt", "value": "4."},
        {"from": "human", "value": "And 3+3?"},
        {"from": "chatgpt", "value": "6."},
    ],
}


def test_sharegpt_maps_roles_and_round_trips():
    record = from_sharegpt(SHAREGPT)
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert record["id"] == "abc" and record["messages"][1]["content"] == "What is 2+2?"
    back = to_sharegpt(record)
    assert [t["from"] for t in back["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
    assert from_sharegpt(back)["messages"] == record["messages"]


@pytest.mark.parametrize(
    "raw, reason",
    [
        ([1, 2], "not_an_object"),
        ({"id": "x", "messages": []}, "missing_conversations"),
        ({"conversations": "hello"}, "conversations_not_a_list"),
        ({"conversations": ["hello"]}, "turn_not_an_object"),
        ({"conversations": [{"from": "human", "value": 42}]}, "value_not_string"),
        ({"conversations": [{"from": "narrator", "value": "once"}]}, "unknown_role"),
        ({"conversations": [{"value": "who said this"}]}, "missing_speaker"),
        ({"conversations": [{"from": "human", "value": "bad \udcff byte"}]}, "invalid_utf8"),
    ],
)
def test_bad_records_raise_a_countable_reason(raw, reason):
    with pytest.raises(RecordError) as err:
        from_sharegpt(raw)
    assert err.value.reason == reason


def test_jsonl_split_reports_bad_lines_and_keeps_going():
    text = "\n".join([json.dumps(SHAREGPT), "not json", "", json.dumps({**SHAREGPT, "id": "b"}), "caf\udce9"])
    items = list(split_sharegpt(text))
    assert [line for line, _, _ in items] == [1, 2, 4, 5]
    assert items[4 - 1][2].reason == "invalid_utf8"
    assert parse_sharegpt(items[0][1])["id"] == "abc"
    with pytest.raises(RecordError, match="invalid_json"):
        parse_sharegpt(items[1][1])
    assert parse_sharegpt(items[2][1])["id"] == "b"


def test_json_array_split_resynchronises_after_a_broken_element():
    good = json.dumps(SHAREGPT)
    text = (
        "[\n" + good + ",\n" + '{"id": "broken", "conversations": [{"from": ' + ",\n" + good.replace("abc", "z") + "\n]"
    )
    items = list(split_sharegpt(text))
    assert [(line, err.reason if err else None) for line, _, err in items] == [
        (2, None),
        (3, "invalid_json"),
        (4, None),
    ]
    assert parse_sharegpt(items[2][1])["id"] == "z"


@pytest.mark.parametrize("jsonl", [True, False])
def test_write_then_read_sharegpt(tmp_path, jsonl):
    records = [from_sharegpt(SHAREGPT), from_sharegpt({**SHAREGPT, "id": "2"})]
    path = tmp_path / "out.json"
    assert write_sharegpt(records, str(path), jsonl=jsonl) == 2
    read = [parse_sharegpt(raw) for _, raw, err in split_sharegpt(path.read_text()) if not err]
    assert [r["messages"] for r in read] == [r["messages"] for r in records]


def test_swap_exchanges_user_and_assistant_and_keeps_system():
    messages = from_sharegpt(SHAREGPT)["messages"]
    swapped = swap_roles(messages)
    assert [m["role"] for m in swapped] == ["system", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in swapped] == [m["content"] for m in messages]


@pytest.mark.parametrize("end_marker", [False, True])
def test_swap_twice_is_identity(end_marker):
    messages = from_sharegpt(SHAREGPT)["messages"]
    swapped = swap_roles(messages, end_marker=end_marker)
    assert swap_roles(swapped) == messages
    # and the other way round: from the simulator's view back and forth
    assert swap_roles(swap_roles(swapped), end_marker=end_marker) == swapped


def test_end_marker_is_a_final_simulated_user_turn():
    swapped = swap_roles(from_sharegpt(SHAREGPT)["messages"], end_marker=True)
    assert swapped[-1] == {"role": "assistant", "content": END_OF_CONVERSATION}
    assert swapped[-2]["role"] == "user"  # the assistant's last answer, seen from the simulator


def test_simulator_view_has_its_own_system_prompt_and_swapped_turns():
    from ray_apps.conversation import simulator_view

    view = simulator_view(from_sharegpt(SHAREGPT)["messages"], system_prompt="You are a user.", end_marker=True)
    assert view[0] == {"role": "system", "content": "You are a user."}
    assert [m["role"] for m in view[1:]] == ["assistant", "user", "assistant", "user", "assistant"]
    assert view[1]["content"] == "What is 2+2?" and view[-1]["content"] == END_OF_CONVERSATION
