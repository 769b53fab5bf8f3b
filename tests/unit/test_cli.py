import subprocess
import sys
from pathlib import Path

from ray_apps.cli import main

from ..helpers import ROOT


def test_bad_config_key_exits_2_naming_it(capsys):
    assert main(["prepare", "--config", str(ROOT / "configs/tiny.yaml"), "prepare.min_turnz=2"]) == 2
    assert "prepare.min_turnz: unknown key" in capsys.readouterr().err


def test_override_after_input_is_still_an_override(capsys):
    code = main(["prepare", "--input", "/no/such/file.jsonl", "prepare.dedup.threshold=7"])
    assert code == 2 and "prepare.dedup.threshold" in capsys.readouterr().err


def test_overrides_stand_anywhere_between_options(capsys, tmp_path):
    """`realm rollout --config c.yaml run.workdir=w --output o rollout.num_sessions=300`, as users write it: both
    overrides are read (here the second is checked by the schema, which names it)."""
    code = main(
        ["rollout", "--config", str(ROOT / "configs/tiny.yaml"), f"run.workdir={tmp_path}", "--output", "o"]
        + ["rollout.num_sessionz=300"]
    )
    assert code == 2 and "rollout.num_sessionz: unknown key" in capsys.readouterr().err


def test_missing_input_fails_at_start(capsys, tmp_path):
    workdir = f"run.workdir={tmp_path}"
    assert (
        main(["prepare", "--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"), workdir]) == 2
    )
    assert "input not found" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert main(["prepare", "--input", str(empty), workdir]) == 2
    assert "input is empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_realm_console_script_lists_the_commands():
    realm = Path(sys.executable).parent / "realm"
    out = subprocess.run([str(realm), "--help"], capture_output=True, text=True, check=True)
    for command in ("prepare", "init-model", "pipeline"):
        assert command in out.stdout
