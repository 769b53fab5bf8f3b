"""`realm pipeline`: the stages in order, each skipped when its completion marker matches the config."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .config import PipelineConfig, write_run_config
from .data import run_prepare
from .models import run_init_model
from .runtime import ensure_ray

MARKER = "_COMPLETE.json"


def _stage(name: str, directory: Path, fingerprint: str, run: Callable[[], object]) -> None:
    marker = directory / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
        print(f"[pipeline] {name}: done before, skipped ({directory})", flush=True)
        return
    print(f"[pipeline] {name}: running -> {directory}", flush=True)
    started = time.time()
    run()
    seconds = round(time.time() - started, 1)
    marker.write_text(json.dumps({"stage": name, "fingerprint": fingerprint, "seconds": seconds}) + "\n")
    print(f"[pipeline] {name}: finished in {seconds}s", flush=True)


def run_pipeline(config: PipelineConfig, workdir: str | None = None) -> Path:
    """Run every stage under ``workdir`` (default ``run.workdir``); returns the working directory."""
    root = Path(workdir or config.run.workdir)
    write_run_config(config, root)
    fingerprint = config.fingerprint()
    real = root / "real"
    _stage("prepare", real, fingerprint, lambda: (ensure_ray(config.ray), run_prepare(config, output=str(real))))
    if config.model.base is None:
        base = root / "models" / "base"
        _stage("init-model", base, fingerprint, lambda: run_init_model(config, real, base))
    print(f"[pipeline] complete: {root.resolve()}", flush=True)
    return root
