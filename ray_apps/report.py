"""The pipeline's one report: every stage's numbers as Markdown (``report.md``) and HTML (``report.html``)."""

from __future__ import annotations

import os
from pathlib import Path

from .eval.fastchat import answer_turns, answers_dir, load_answers
from .eval.plots import stats_table
from .layout import RunLayout
from .tables import Section, html_page, markdown_page


def _training(results: dict) -> Section:
    def loss(value) -> str:
        return "—" if value is None else f"{value:.4f}"  # — : the run had no eval split

    rows = [
        [
            name.removeprefix("train-"),
            r.get("step"),
            loss(r.get("eval_loss_first")),
            loss(r.get("eval_loss_last")),
            r.get("output"),
        ]
        for name, r in results.items()
        if name.startswith("train-") and r
    ]
    return Section("Training", ["model", "steps", "eval loss before", "eval loss after", "exported to"], rows)


def _rollout(r: dict) -> Section:
    usage = r.get("usage", {})
    rows = [
        ["seeds", r["seeds"]],
        ["sessions", r["sessions"]],
        ["failures", r["failures"]],
        ["mean user turns", r["mean_user_turns"]],
        *[[f"{role} completion tokens", u.get("completion_tokens")] for role, u in usage.items()],
        ["stop reasons", ", ".join(f"{k} {v}" for k, v in r["stop_reasons"].items())],
        ["failure reasons", ", ".join(f"{k} {v}" for k, v in r["failure_reasons"].items()) or "none"],
    ]
    return Section("Rollout (simulated sessions)", ["", "value"], rows)


def _stats(stats: dict, stats_dir: Path, here: Path) -> Section:
    rel = os.path.relpath(stats_dir, here)
    header, rows = stats_table(stats)
    return Section(
        "Real vs simulated data",
        header,
        rows,
        [
            f"Lengths in {stats['length_unit']}; topic similarity by {stats['topic_similarity_method']} (lower is "
            "more diverse). "
            f"Full page: {rel}/report.html"
        ],
        [f"{rel}/{png}" for png in ("turns.png", "user_utterances.png", "assistant_utterances.png")],
    )


def _benchmarks(evaluation: dict, layout: RunLayout) -> list[Section]:
    answers = evaluation.get("answers")
    if not answers:
        return [Section("Benchmarks", text=["Skipped: no benchmark configured (eval.benchmarks)."])]
    rows = []
    for model, by_bench in answers.items():
        for bench, counts in by_bench.items():
            path = answers_dir(layout.bench(bench)) / f"{model}.jsonl"
            turns = [t for a in (load_answers(path).values() if path.exists() else []) for t in answer_turns(a)]
            words = round(sum(len(t.split()) for t in turns) / len(turns), 1) if turns else None
            rows.append([bench, model, counts["answered_before"] + counts["done"], counts["failed"], words])
    sections = [Section("Benchmark answers", ["benchmark", "model", "answered", "failed", "mean words per turn"], rows)]
    judge = evaluation.get("judge")
    if judge is None:
        sections.append(
            Section(
                "Judge", text=["Skipped: no judge endpoint configured. Set eval.judge and eval.judge_prompts to judge."]
            )
        )
    for bench, files in (judge or {}).items():
        for file, results in files.items():
            header = sorted({k for r in results.values() for k in r if not isinstance(r[k], dict)})
            rows = [[model, *(r.get(k) for k in header)] for model, r in results.items()]
            sections.append(Section(f"Judge: {bench} ({Path(file).name})", ["model", *header], rows))
    return sections


def write_pipeline_report(layout: RunLayout, results: dict, manifest: dict) -> Path:
    """``<workdir>/report/report.md`` and ``report.html`` from the stages' results; returns the HTML path."""
    here = layout.report
    here.mkdir(parents=True, exist_ok=True)
    stages = manifest["stages"]
    sections = [
        Section(
            "Stages",
            ["stage", "status", "seconds", "artefacts"],
            [
                [
                    n,
                    "skipped (done before)" if s.get("skipped") else s["status"],
                    s.get("seconds"),
                    ", ".join(s["artefacts"]),
                ]
                for n, s in stages.items()
            ],
        )
    ]
    if prepared := results.get("prepare"):
        sections.append(
            Section(
                "Real data (prepare)",
                ["", "value"],
                [
                    ["input records", prepared["input_records"]],
                    ["conversations kept", prepared["conversations_kept"]],
                    ["segments", ", ".join(f"{k} {v}" for k, v in prepared["segments"].items())],
                    ["rejected", ", ".join(f"{k} {v}" for k, v in prepared["rejected"].items()) or "none"],
                ],
            )
        )
    sections.append(_training(results))
    if rollout := results.get("rollout"):
        sections.append(_rollout(rollout))
    if evaluation := results.get("eval"):
        sections.append(_stats(evaluation["stats"], layout.stats, here))
        sim = evaluation["simulator"]
        sections.append(
            Section(
                "User simulator fidelity",
                ["model", "human-turn perplexity on held-out real conversations"],
                [["usergpt", sim["simulator"]["perplexity"]], ["untrained base", sim["base"]["perplexity"]]],
            )
        )
        sections += _benchmarks(evaluation, layout)
    versions = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items())
    sections.append(
        Section("Run", text=[f"Config fingerprint {manifest['config_fingerprint']} ({manifest['config']}).", versions])
    )
    title = f"ReaLM pipeline report: {layout.root.name}"
    (here / "report.md").write_text(markdown_page(title, sections))
    (here / "report.html").write_text(html_page(title, sections))
    return here / "report.html"
