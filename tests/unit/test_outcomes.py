"""A rollout's outcome reads the same whichever shape it was written in: a session record or a failure record."""

import json

from ray_apps.outcomes import Outcome
from ray_apps.rollout.store import Tally, read_shard, write_shard

USAGE = {"user": {"prompt_tokens": 10, "completion_tokens": 4}}
MESSAGES = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]


def test_a_session_and_a_failure_answer_the_same_questions(tmp_path):
    meta = {"seed_id": "s1", "stop_reason": "end_marker", "user_turns": 1, "usage": USAGE}
    session = Outcome.session("k1", MESSAGES, meta | {"rejected_user_turns": {"role_flip": 2}})
    failure = Outcome.failure(
        "k2", "s2", "http_error", "503", messages=MESSAGES[:1], usage=USAGE, rejected_user_turns={"empty": 1}
    )
    assert (session.is_session, session.key, session.stop_reason, session.reason) == (True, "k1", "end_marker", None)
    assert (failure.is_session, failure.key, failure.stop_reason, failure.reason) == (False, "k2", None, "http_error")
    assert session.usage == failure.usage == USAGE and (session.user_turns, failure.user_turns) == (1, 0)
    assert session.rejected_user_turns == {"role_flip": 2} and failure.rejected_user_turns == {"empty": 1}
    # the shapes written: a session in the messages format, a failure as failures.jsonl holds it
    assert set(session.record) == {"id", "messages", "meta"}
    assert failure.record["seed_id"] == "s2" and failure.record["detail"] == "503" and "meta" not in failure.record
    # a shard holds both and gives them back as they were
    write_shard(tmp_path, [session, failure])
    (shard,) = (tmp_path / "shards").glob("*.jsonl")
    assert [json.loads(line)["status"] for line in shard.read_text().splitlines()] == ["session", "failure"]
    assert list(read_shard(shard)) == [session, failure]
    counted = Tally()
    for outcome in (session, failure):
        counted.add(outcome)
    assert (counted.sessions, counted.failures, counted.user_turns) == (1, 1, 1)
    assert counted.usage["user"]["completion_tokens"] == 8 and counted.rejected == {"role_flip": 2, "empty": 1}
    assert counted.stop_reasons == {"end_marker": 1} and counted.failure_reasons == {"http_error": 1}
