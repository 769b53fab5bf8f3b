"""`realm prepare` through Ray Data on a real local Ray."""

import json
from collections import Counter
from pathlib import Path

import pytest
from make_sample import generate

from ray_apps.cli import main
from ray_apps.config import load_config
from ray_apps.data import PrepareError, run_prepare
from ray_apps.layout import PreparedData
from ray_apps.records import read_records

from ..helpers import ROOT, SAMPLE

pytestmark = pytest.mark.integration


def _records(out: Path, split: str, fmt: str = "parquet") -> list[dict]:
    records, skipped = read_records(PreparedData(out).split(split, fmt))
    assert not skipped, skipped
    return records


def _rejects(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def sample_run(ray_session, tmp_path_factory):
    out, workdir = tmp_path_factory.mktemp("prepared"), tmp_path_factory.mktemp("workdir")
    config = ["--config", str(ROOT / "configs/tiny.yaml"), f"run.workdir={workdir}"]
    code = main(["prepare", *config, "--input", str(SAMPLE), "--output", str(out)])
    assert code == 0
    # the command's full log, under its working directory (what pytest captures in-process never reaches it: the
    # pipeline job's test reads the logs' content)
    assert (workdir / "logs" / "prepare.log").read_text().startswith("===== ")
    return out, json.loads((out / "summary.json").read_text())


def test_sample_corpus_is_cleaned_and_every_record_is_accounted_for(sample_run):
    out, summary = sample_run
    rejects = _rejects(out)
    assert summary["input_records"] == summary["conversations_kept"] + sum(summary["rejected"].values())
    assert Counter(r["reason"] for r in rejects) == Counter(summary["rejected"])
    for reason in (
        "invalid_json",
        "invalid_utf8",
        "missing_conversations",
        "unknown_role",
        "value_not_string",
        "not_alternating",
        "language",
        "blocklisted",
        "exact_duplicate",
        "too_short",
    ):
        assert summary["rejected"].get(reason), reason
    assert all(r["source"] and r["line"] > 0 for r in rejects)
    assert {"html_to_markdown", "merged_messages", "leading_assistant_dropped"} <= set(summary["fixes"])
    assert (out / "resolved_config.yaml").is_file() and (out / "fingerprint").is_file()


def test_output_records_are_clean_and_well_formed(sample_run):
    out, summary = sample_run
    train, evals = _records(out, "train"), _records(out, "eval")
    assert len(train) == summary["segments"]["train"] and len(evals) == summary["segments"]["eval"] > 0

    def by_id(records):
        return sorted(records, key=lambda r: r["id"])

    assert by_id(_records(out, "train", "jsonl")) == by_id(train)
    for record in train + evals:
        roles = [m["role"] for m in record["messages"] if m["role"] != "system"]
        assert roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:]))
        assert all("<div" not in m["content"] and "<p>" not in m["content"] for m in record["messages"])
        assert record["meta"]["language"] == "en" and record["meta"]["split"] in ("train", "eval")

    def base(rid):
        return rid.split("#")[0]

    assert not {base(r["id"]) for r in train} & {base(r["id"]) for r in evals}  # segments never straddle splits
    assert len({r["id"] for r in train + evals}) == len(train) + len(evals)
    assert any(r["meta"]["num_segments"] > 1 for r in train)  # tiny max_tokens cuts long ones
    ended = Counter(r["meta"]["ended_naturally"] for r in train + evals)
    assert ended[True] == summary["conversations_kept"]


def test_rerun_replaces_the_output(sample_run, ray_session):
    out, summary = sample_run
    again = run_prepare(load_config(ROOT / "configs/tiny.yaml"), [str(SAMPLE)], str(out))
    assert again["segments"] == summary["segments"] and len(_records(out, "train")) == summary["segments"]["train"]


def test_corrupted_lines_are_all_rejected_and_valid_records_all_come_through(ray_session, tmp_path):
    valid = generate(4000, seed=3, mess=False)
    corrupted = [line[: len(line) // 3] for line in generate(1000, seed=4, mess=False)]
    lines = valid + corrupted
    import random

    random.Random(0).shuffle(lines)
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n")
    cfg = load_config(
        ROOT / "configs/tiny.yaml",
        ["prepare.dedup.exact=false", "prepare.dedup.near=false", "prepare.segment.max_tokens=100000"],
    )
    summary = run_prepare(cfg, [str(src)], str(tmp_path / "out"))
    assert summary["rejected"] == {"invalid_json": 1000}
    kept_ids = {r["id"] for split in ("train", "eval") for r in _records(tmp_path / "out", split)}
    assert kept_ids == {json.loads(line)["id"] for line in valid}
    assert len(_rejects(tmp_path / "out")) == 1000


def test_too_much_garbage_fails_after_writing_everything(ray_session, tmp_path):
    src = tmp_path / "garbage.jsonl"
    src.write_text("\n".join(["not json"] * 30 + generate(10, seed=5, mess=False)) + "\n")
    with pytest.raises(PrepareError, match="prepare.max_invalid_fraction"):
        run_prepare(load_config(None, ["prepare.languages=[]"]), [str(src)], str(tmp_path / "out"))
    assert len(_rejects(tmp_path / "out")) >= 30 and (tmp_path / "out" / "summary.json").is_file()


def test_fsspec_urls_and_json_arrays_are_read(ray_session, tmp_path):
    src = tmp_path / "array.json"
    src.write_text(json.dumps([json.loads(line) for line in generate(50, seed=6, mess=False)], indent=2))
    summary = run_prepare(load_config(None, ["prepare.dedup.near=false"]), [f"local://{src}"], str(tmp_path / "out"))
    assert summary["input_records"] == 50 and not summary["rejected"].get("invalid_json")
    assert summary["conversations_kept"] + sum(summary["rejected"].values()) == 50
