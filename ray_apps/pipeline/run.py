"""`realm pipeline`: every stage in order under one working directory, each skipped once complete.

prepare -> init-model (tiny model) -> train usergpt -> train baseline -> rollout (the simulator
and the assistant served by Ray Serve, unless hosted) -> rollout-prompted (with rollout.compare_with:
an instruct model prompted to play the user, against the same assistant) -> eval simulator (real vs
simulated, the simulators' fidelity) -> train realm -> eval assistants (benchmark answers, the judge)
-> report.

``graph.py`` declares each stage (the config keys and files it reads, what it writes) and derives its
fingerprint from that. A stage's state lives in ``<workdir>/stages/<stage>.json``: ``running`` while it
runs, ``complete`` with its seconds and result after. A rerun skips a complete stage with the same
fingerprint, resumes a running one (training from its last checkpoint, rollout and eval from what they
wrote) and redoes one whose fingerprint changed, clearing its old outputs first.
``manifest.json`` lists the config fingerprint, package versions, timings and artefact paths.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from ..config import PipelineConfig, write_run_config
from ..console import stage_log
from ..layout import RunLayout
from ..runtime import ensure_ray
from .graph import Stage, fingerprints, stage_graph

PACKAGES = ("realm-on-ray", "ray", "torch", "transformers", "trl", "deepspeed", "datasets", "openai", "vllm")


def run_pipeline(config: PipelineConfig) -> Path:
    """Run (or resume) every stage under ``run.workdir``; returns the report's path."""
    layout = RunLayout(config)
    write_run_config(config, layout.root)
    stages = stage_graph(config, layout)
    fingerprinted = fingerprints(stages)  # before Ray starts: a GGUF base named but not there fails here
    ensure_ray(config.ray)
    manifest = {
        "config_fingerprint": config.fingerprint(),
        "config": str(layout.resolved_config),
        "packages": _versions(),
        "stages": {},
    }
    started = time.time()
    for number, stage in enumerate(stages, 1):
        manifest["stages"][stage.name] = _run_stage(
            stage, fingerprinted[stage.name], layout, f"{number}/{len(stages) + 1}"
        )
        _write_manifest(layout, manifest)

    from ..report import write_pipeline_report

    results = {name: entry["result"] for name, entry in manifest["stages"].items()}
    report = write_pipeline_report(layout, results, manifest)
    manifest |= {"report": str(report), "seconds": round(time.time() - started, 1)}
    _write_manifest(layout, manifest)
    print(f"[pipeline] {len(stages) + 1}/{len(stages) + 1} report -> {report}", flush=True)
    print(f"[pipeline] complete in {manifest['seconds']}s; report: {report}", flush=True)
    return report


def _state(layout: RunLayout, name: str) -> dict:
    path = layout.stage(name)
    return json.loads(path.read_text()) if path.is_file() else {}


def _set_state(layout: RunLayout, name: str, state: dict) -> None:
    path = layout.stage(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2, default=str) + "\n")
    path.with_suffix(".tmp").replace(path)


def _run_stage(stage: Stage, fingerprint: str, layout: RunLayout, position: str) -> dict:
    state = _state(layout, stage.name)
    artefacts = [str(p) for p in stage.outputs]
    if state.get("status") == "complete" and state.get("fingerprint") == fingerprint:
        print(f"[pipeline] {position} {stage.name}: done before, skipped ({', '.join(artefacts)})", flush=True)
        return state | {"skipped": True}
    if state and state.get("fingerprint") != fingerprint:
        # Only what the pipeline owns is deleted: a configured directory elsewhere (eval.output, rollout.output)
        # is kept.
        owned = [p for p in stage.outputs if p.resolve().is_relative_to(layout.root)]
        kept = ", ".join(str(p) for p in stage.outputs if p not in owned)
        cleared = ", ".join(str(p) for p in owned) or "nothing"
        print(
            f"[pipeline] {position} {stage.name}: its config or inputs changed, clearing {cleared}"
            + (f" (kept, outside the working directory: {kept})" if kept else ""),
            flush=True,
        )
        for path in owned:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    resumed = state.get("status") == "running" and state.get("fingerprint") == fingerprint
    print(
        f"[pipeline] {position} {stage.name}: {'resuming' if resumed else 'running'} -> {', '.join(artefacts)}",
        flush=True,
    )
    _set_state(
        layout,
        stage.name,
        {"stage": stage.name, "status": "running", "fingerprint": fingerprint, "artefacts": artefacts},
    )
    started = time.time()
    with stage_log(layout.log(stage.name)) as log:
        try:
            result = stage.run(fingerprint)
        except BaseException as exc:
            stopped = isinstance(exc, (KeyboardInterrupt, SystemExit))  # Ctrl-C, `ray job stop`
            print(
                f"[pipeline] {position} {stage.name}: {'stopped' if stopped else 'failed'} after"
                f" {time.time() - started:.0f}s"
                + (f"; its log: {log}" if log else "")
                + ("; what it wrote is kept, resume" if stopped else "; fix the cause and resume")
                + f" with the same command: {_command()}",
                file=sys.stderr,
                flush=True,
            )
            raise
    state = {
        "stage": stage.name,
        "status": "complete",
        "fingerprint": fingerprint,
        "seconds": round(time.time() - started, 1),
        "artefacts": artefacts,
        "result": result,
    }
    _set_state(layout, stage.name, state)
    print(f"[pipeline] {position} {stage.name}: finished in {state['seconds']}s", flush=True)
    return state


def _command() -> str:
    """The command line that started this process (what resumes it)."""
    program = Path(sys.argv[0]).name
    return shlex.join([program, *sys.argv[1:]] if program == "realm" else [Path(sys.executable).name, *sys.argv])


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _write_manifest(layout: RunLayout, manifest: dict) -> None:
    layout.manifest.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
