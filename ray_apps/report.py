"""The pipeline's one report: every stage's numbers as Markdown (``report.md``) and HTML (``report.html``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .eval.fastchat import answer_turns, answers_dir, load_answers
from .eval.figures import FIGURES, Measured, bound_text
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


def _rollout(r: dict, title: str = "Rollout (simulated sessions)") -> Section:
    usage = r.get("usage", {})
    rows = [
        ["seeds", r["seeds"]],
        ["sessions", r["sessions"]],
        ["failures", r["failures"]],
        ["mean user turns", r["mean_user_turns"]],
        *[[f"{role} completion tokens", u.get("completion_tokens")] for role, u in usage.items()],
        ["completion tokens per second", r.get("completion_tokens_per_second")],
        ["stop reasons", ", ".join(f"{k} {v}" for k, v in r["stop_reasons"].items())],
        ["failure reasons", ", ".join(f"{k} {v}" for k, v in r["failure_reasons"].items()) or "none"],
    ]
    return Section(title, ["", "value"], rows)


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


def _target(target: dict | None) -> tuple[str, str]:
    if target is None:
        return "", ""
    return bound_text(target), "yes" if target["met"] else "NO"


def _fidelity(sim: dict) -> Section:
    """The simulator next to real people: each figure measured, real and simulated, with its target."""
    targets, sessions = sim.get("targets", {}), sim.get("sessions")
    measured = Measured(sim["simulator"], sim["base"], sessions)
    table = []
    for figure in FIGURES:
        real, simulated = figure.read(measured)
        if simulated is None and real is None:
            continue
        ratio = figure.value(measured) if figure.ratio_to else ""
        table.append([figure.label, "—" if real is None else real, simulated, ratio, *_target(targets.get(figure.key))])
    text = [
        f"Held out: {sim['conversations']} real conversations no model trained on (human-turn perplexity of the "
        f"untrained base: {sim['base']['perplexity']}). Session figures compare the "
        "rollout's sessions with the real training split; rates count every user turn the simulator wrote, "
        "including those the rollout's filters resampled."
    ]
    if sessions:
        resampled = ", ".join(f"{k} {v}" for k, v in sessions["resampled_user_turns"].items()) or "none"
        text.append(f"Resampled user turns: {resampled} (of {sessions['user_turns_written']} written).")
    missed = [k for k, t in targets.items() if not t["met"]]
    text.append(f"Targets not met: {', '.join(missed)}." if missed else "Every target is met.")
    return Section("User simulator fidelity", ["figure", "real", "simulated", "ratio", "target", "met"], table, text)


def _comparison(sim: dict) -> Section:
    """Real people, the trained simulator and the prompted one, figure by figure; which simulator is closer."""
    prompted = sim["prompted"]
    model = Path(prompted.get("weights") or prompted["model"]).name
    rows = []
    for row in sim["comparison"]:
        target, met = row["target"], row["met"] or {}
        rows.append(
            [
                row["meaning"],
                row["real"],
                row["trained"],
                row["prompted"],
                f"{target['key']} {bound_text(target)}" if target else "",
                ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in met.items()),
                row["closer"] or "—",
            ]
        )
    closer = {
        name: [r["meaning"] for r in sim["comparison"] if r["closer"] == name]
        for name in ("trained", "prompted", "tie")
    }
    judged = sum(len(v) for v in closer.values())
    text = [
        f"The trained simulator (UserGPT) against {model} as it is, prompted to play the user with the "
        f"persona “{prompted['persona']}”, both talking to the same assistant; each model scored in its own chat "
        "format (the prompted one ends by writing the end marker it was told to write). Ratios and rates compare "
        "with the real training split, perplexity and termination with the held-out conversations.",
        f"Shown by this run: of {judged} figures measured for both, the trained simulator is closer to the real "
        f"people on {len(closer['trained'])} ({', '.join(closer['trained']) or 'none'}), the prompted one on "
        f"{len(closer['prompted'])} ({', '.join(closer['prompted']) or 'none'}), {len(closer['tie'])} are even. "
        f"Not shown: that it holds beyond this model ({model}), corpus and size, nor which assistant answers "
        "better: that needs a judge (eval.judge: MT-Bench pairwise answers of ReaLM vs the baseline).",
    ]
    return Section(
        "Trained vs prompted simulator",
        ["figure", "real", "trained", "prompted", "target", "met", "closer"],
        rows,
        text,
    )


def _turns(record: dict | None, width: int = 160) -> list[str]:
    if record is None:
        return []
    out = []
    for m in record["messages"]:
        text = " ".join(m["content"].split()).replace("|", "/")
        out.append(f"{m['role']}: {text[:width]}{'…' if len(text) > width else ''}")
    return out


def _side_by_side(layout: RunLayout, sessions: int = 3) -> Section:
    """The first sessions of the real people (held out), the trained simulator and the prompted one, turn by turn."""
    from .records import read_records

    columns = {
        "real (held out)": read_records(layout.heldout)[0][:sessions],
        "trained": read_records(layout.realchat.data)[0][:sessions],
        "prompted": read_records(layout.prompted.data)[0][:sessions],
    }
    rows = []
    for i in range(sessions):
        turns = [_turns(c[i] if i < len(c) else None) for c in columns.values()]
        for j in range(max(map(len, turns))):
            rows.append([i + 1, *(t[j] if j < len(t) else "" for t in turns)])
    return Section(
        "Sessions side by side",
        ["session", *columns],
        rows,
        ["The first sessions of each, whole (each turn cut at 160 characters)."],
    )


def _assistants(results: dict, evaluation: dict) -> Section:
    """ReaLM (trained on simulated sessions) against the baseline (trained on real ones), in plain words."""
    losses = {m: (results.get(f"train-{m}") or {}).get("eval_loss_last") for m in ("baseline", "realm")}
    if None in losses.values():
        return Section("ReaLM vs baseline", text=["No eval loss for both assistants: they are not compared."])
    ppl = {m: math.exp(v) for m, v in losses.items()}
    ratio = ppl["realm"] / ppl["baseline"]
    text = [
        f"On the real eval split (conversations neither trained on), ReaLM's perplexity on assistant turns is "
        f"{ppl['realm']:.2f} against the baseline's {ppl['baseline']:.2f}: x{ratio:.2f} the baseline's, "
        + ("worse." if ratio > 1 else "better or equal."),
        "ReaLM learns the assistant turns of the simulated sessions, which rollout.assistant wrote: it can only "
        "be as good as that teacher. With the run's own baseline as the teacher (the default) it learns a copy of "
        "the baseline from fewer, machine-written turns, so it is expected to be worse; the method's gain comes "
        "from a stronger teacher (the paper's was ChatGPT).",
    ]
    if evaluation.get("judge"):
        text.append("The judge's verdicts on the benchmark answers are in the Judge sections above.")
    else:
        text.append(
            "No judge ran, so the benchmark answers are not scored; the table above only counts them and their length."
        )
    text.append(
        "At this scale (the embedded tiny model, a few hundred sessions) the assistants learn the corpus's "
        "wording, not to answer new questions: read these figures as a check that ReaLM can be trained on "
        "simulated sessions and measured against the baseline, not as a quality claim. The method's claim "
        "(ReaLM close to or above the baseline) needs a real base model and corpus (configs/llama2-7b.yaml)."
    )
    return Section("ReaLM vs baseline", text=text)


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
    if prompted := results.get("rollout-prompted"):
        sections.append(_rollout(prompted, "Rollout (prompted simulator)"))
    if simulator := results.get("eval-simulator"):
        sections.append(_stats(simulator["stats"], layout.stats, here))
        sections.append(_fidelity(simulator["simulator"]))
        if "comparison" in simulator["simulator"]:
            sections.append(_comparison(simulator["simulator"]))
            sections.append(_side_by_side(layout))
    if (evaluation := results.get("eval-assistants")) is not None:
        sections += _benchmarks(evaluation, layout)
        sections.append(_assistants(results, evaluation))
    versions = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items())
    sections.append(
        Section("Run", text=[f"Config fingerprint {manifest['config_fingerprint']} ({manifest['config']}).", versions])
    )
    title = f"ReaLM pipeline report: {layout.root.name}"
    (here / "report.md").write_text(markdown_page(title, sections))
    (here / "report.html").write_text(html_page(title, sections))
    return here / "report.html"
