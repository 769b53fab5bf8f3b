"""One record encoding: what every writer of the project writes, every reader reads back."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from ray_apps.records import read_records, write_records

RECORDS = [
    {"id": "a", "messages": [{"role": "user", "content": "Hi?"}], "meta": {"ended_naturally": True, "usage": {"x": 1}}},
    {"id": "b", "messages": [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": "So."}], "meta": {}},
]


def test_parquet_and_jsonl_round_trip_with_meta_as_written(tmp_path):
    for name in ("s.parquet", "s.jsonl"):
        write_records(RECORDS, tmp_path / name)
        assert read_records(tmp_path / name) == (RECORDS, {}), name
    assert pq.read_table(tmp_path / "s.parquet").schema.field("meta").type == pa.string()  # one JSON string column
    assert json.loads((tmp_path / "s.jsonl").read_text().splitlines()[0])["meta"]["ended_naturally"] is True


def test_a_struct_meta_and_sharegpt_rows_are_read_and_bad_rows_are_counted(tmp_path):
    pq.write_table(pa.Table.from_pylist([{**RECORDS[0], "meta": {"ended_naturally": True}}]), tmp_path / "old.parquet")
    records, skipped = read_records(tmp_path / "old.parquet")  # a struct column, as earlier prepare outputs hold
    assert records[0]["meta"] == {"ended_naturally": True} and not skipped
    lines = [
        json.dumps({"id": "g", "conversations": [{"from": "human", "value": "Hello?"}]}),
        json.dumps({"id": "bad", "messages": "not a list"}),
        "{cut",
    ]
    (tmp_path / "mixed.jsonl").write_text("\n".join(lines) + "\n")
    records, skipped = read_records(tmp_path / "mixed.jsonl")
    assert [r["messages"] for r in records] == [[{"role": "user", "content": "Hello?"}]]
    assert sum(skipped.values()) == 2 and any(k.startswith("invalid_json") for k in skipped), skipped
