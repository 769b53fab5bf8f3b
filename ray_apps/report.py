"""The pipeline's one report: every stage's numbers as Markdown (``report.md``) and HTML (``report.html``)."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from .eval.fastchat import answer_turns, load_answers

_PAGE = jinja2.Template("""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>
</head><body><h1>{{ title }}</h1>
{% for s in sections %}<h2>{{ s.title }}</h2>{% for p in s.text %}<p>{{ p }}</p>{% endfor %}
{% if s.rows %}<table><tr>{% for h in s.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in s.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% for img in s.images %}<img src="{{ img }}" alt="{{ img }}" style="max-width:48%">{% endfor %}
{% endfor %}</body></html>
""")


def _section(title: str, header: list[str] = (), rows: list[list] = (), text: list[str] = (), images: list[str] = ()) -> dict:
    return {"title": title, "header": list(header), "rows": [list(r) for r in rows], "text": list(text), "images": list(images)}


def _markdown(title: str, sections: list[dict]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s['title']}", ""] + [f"{p}\n" for p in s["text"]]
        if s["rows"]:
            lines += ["| " + " | ".join(s["header"]) + " |", "|" + "---|" * len(s["header"])]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in s["rows"]] + [""]
        lines += [f"![{img}]({img})" for img in s["images"]] + ([""] if s["images"] else [])
    return "\n".join(lines)


def _training(results: dict) -> dict:
    def loss(value) -> str:
        return "—" if value is None else f"{value:.4f}"  # — : the run had no eval split

    rows = [[name.removeprefix("train-"), r.get("step"), loss(r.get("eval_loss_first")), loss(r.get("eval_loss_last")), r.get("output")]
            for name, r in results.items() if name.startswith("train-") and r]  # fmt: skip
    return _section("Training", ["model", "steps", "eval loss before", "eval loss after", "exported to"], rows)


def _rollout(r: dict) -> dict:
    usage = r.get("usage", {})
    rows = [["seeds", r["seeds"]], ["sessions", r["sessions"]], ["failures", r["failures"]], ["mean user turns", r["mean_user_turns"]],
            *[[f"{role} completion tokens", u.get("completion_tokens")] for role, u in usage.items()],
            ["stop reasons", ", ".join(f"{k} {v}" for k, v in r["stop_reasons"].items())],
            ["failure reasons", ", ".join(f"{k} {v}" for k, v in r["failure_reasons"].items()) or "none"]]  # fmt: skip
    return _section("Rollout (simulated sessions)", ["", "value"], rows)


def _stats(stats: dict, stats_dir: Path, here: Path) -> dict:
    names = list(stats["stats"])
    keys = [k for k in stats["stats"][names[0]] if k != "skipped_rows"]
    rel = os.path.relpath(stats_dir, here)
    return _section(
        "Real vs simulated data", ["statistic", *names], [[k, *(stats["stats"][n][k] for n in names)] for k in keys],
        [f"Lengths in {stats['length_unit']}; topic similarity by {stats['topic_similarity_method']} (lower is more diverse). "
         f"Full page: {rel}/report.html"],
        [f"{rel}/{png}" for png in ("turns.png", "user_utterances.png", "assistant_utterances.png")],
    )  # fmt: skip


def _benchmarks(evaluation: dict, eval_dir: Path) -> list[dict]:
    answers = evaluation.get("answers")
    if not answers:
        return [_section("Benchmarks", text=["Skipped: no benchmark configured (eval.benchmarks)."])]
    rows = []
    for model, by_bench in answers.items():
        for bench, counts in by_bench.items():
            path = eval_dir / bench / "model_answer" / f"{model}.jsonl"
            turns = [t for a in (load_answers(path).values() if path.exists() else []) for t in answer_turns(a)]
            words = round(sum(len(t.split()) for t in turns) / len(turns), 1) if turns else None
            rows.append([bench, model, counts["answered_before"] + counts["done"], counts["failed"], words])
    sections = [_section("Benchmark answers", ["benchmark", "model", "answered", "failed", "mean words per turn"], rows)]
    judge = evaluation.get("judge")
    if judge is None:
        sections.append(_section("Judge", text=["Skipped: no judge endpoint configured. Set eval.judge and eval.judge_prompts to judge."]))
    for bench, files in (judge or {}).items():
        for file, results in files.items():
            header = sorted({k for r in results.values() for k in r if not isinstance(r[k], dict)})
            rows = [[model, *(r.get(k) for k in header)] for model, r in results.items()]
            sections.append(_section(f"Judge: {bench} ({Path(file).name})", ["model", *header], rows))
    return sections


def write_report(root: Path, results: dict, manifest: dict) -> Path:
    """``<root>/report/report.md`` and ``report.html`` from the stages' results; returns the HTML path."""
    here = root / "report"
    here.mkdir(parents=True, exist_ok=True)
    stages = manifest["stages"]
    sections = [_section("Stages", ["stage", "status", "seconds", "artefacts"],
                         [[n, "skipped (done before)" if s.get("skipped") else s["status"], s.get("seconds"), ", ".join(s["artefacts"])]
                          for n, s in stages.items()])]  # fmt: skip
    if prepared := results.get("prepare"):
        sections.append(_section("Real data (prepare)", ["", "value"], [
            ["input records", prepared["input_records"]], ["conversations kept", prepared["conversations_kept"]],
            ["segments", ", ".join(f"{k} {v}" for k, v in prepared["segments"].items())],
            ["rejected", ", ".join(f"{k} {v}" for k, v in prepared["rejected"].items()) or "none"]]))  # fmt: skip
    sections.append(_training(results))
    if rollout := results.get("rollout"):
        sections.append(_rollout(rollout))
    if evaluation := results.get("eval"):
        eval_dir = Path(stages["eval"]["artefacts"][0])
        sections.append(_stats(evaluation["stats"], eval_dir / "stats", here))
        sim = evaluation["simulator"]
        sections.append(_section("User simulator fidelity", ["model", "human-turn perplexity on held-out real conversations"],
                                 [["usergpt", sim["simulator"]["perplexity"]], ["untrained base", sim["base"]["perplexity"]]]))  # fmt: skip
        sections += _benchmarks(evaluation, eval_dir)
    versions = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items())
    sections.append(_section("Run", text=[f"Config fingerprint {manifest['config_fingerprint']} ({manifest['config']}).", versions]))
    title = f"ReaLM pipeline report: {root.name}"
    (here / "report.md").write_text(_markdown(title, sections))
    (here / "report.html").write_text(_PAGE.render(title=title, sections=sections))
    return here / "report.html"
