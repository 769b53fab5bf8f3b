"""`realm pipeline` on the embedded tiny default: prepare then init-model, rerun skips both."""

import pytest

from ray_apps.config import load_config
from ray_apps.models import load_model, load_tokenizer
from ray_apps.pipeline import MARKER, run_pipeline

from ..conftest import ROOT, SAMPLE

pytestmark = pytest.mark.integration


def test_tiny_pipeline_runs_then_skips_done_stages(ray_session, tmp_path, capsys):
    cfg = load_config(ROOT / "configs/tiny.yaml", [f"prepare.inputs=[{SAMPLE}]"])
    root = run_pipeline(cfg, str(tmp_path / "run"))
    assert (root / "real" / MARKER).is_file() and (root / "models" / "base" / MARKER).is_file()
    model = load_model(str(root / "models" / "base"))
    tokenizer = load_tokenizer(str(root / "models" / "base"))
    assert model.config.vocab_size == len(tokenizer) and tokenizer.chat_template
    capsys.readouterr()

    run_pipeline(cfg, str(tmp_path / "run"))
    out = capsys.readouterr().out
    assert "prepare: done before, skipped" in out and "init-model: done before, skipped" in out

    changed = load_config(ROOT / "configs/tiny.yaml", [f"prepare.inputs=[{SAMPLE}]", "prepare.min_chars=20"])
    run_pipeline(changed, str(tmp_path / "run"))
    assert "prepare: running" in capsys.readouterr().out  # a new config fingerprint reruns the stage
