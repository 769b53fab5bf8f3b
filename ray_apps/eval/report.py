"""The dataset statistics as a Markdown table, PNG plots (real vs simulated overlaid) and one HTML page."""

from __future__ import annotations

from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ..conversation import ASSISTANT, USER  # noqa: E402

_PAGE = jinja2.Template("""<!doctype html>
<html><head><meta charset="utf-8"><title>Dataset statistics</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th:first-child,td:first-child{text-align:left}</style>
</head><body>
<h1>Dataset statistics</h1>
<p>Lengths in {{ summary.length_unit }}; topic similarity (mean pairwise cosine, lower is more diverse) by {{ summary.topic_similarity_method }}.</p>
<ul>{% for name, path in summary.datasets.items() %}<li><b>{{ name }}</b>: {{ path }}</li>{% endfor %}</ul>
<table><tr><th>statistic</th>{% for name in names %}<th>{{ name }}</th>{% endfor %}</tr>
{% for key in keys %}<tr><td>{{ key }}</td>{% for name in names %}<td>{{ summary.stats[name][key] }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for plot in plots %}<h2>{{ plot.title }}</h2><img src="{{ plot.file }}" alt="{{ plot.title }}">{% endfor %}
</body></html>
""")


def markdown_table(summary: dict) -> str:
    names = list(summary["stats"])
    keys = [k for k in summary["stats"][names[0]] if k != "skipped_rows"]
    lines = ["| statistic | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(str(summary["stats"][n][k]) for n in names) + " |" for k in keys]
    return "\n".join(lines) + "\n"


def _overlaid(path: Path, title: str, xlabel: str, series: dict[str, list[float]], bins) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in series.items():
        if values:
            ax.hist(values, bins=bins, alpha=0.5, density=True, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel="share")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(out: Path, summary: dict, series: dict[str, tuple[list[int], dict[str, list[int]]]]) -> None:
    """stats.md, turns.png, user_utterances.png, assistant_utterances.png and report.html in ``out``."""
    (out / "stats.md").write_text(markdown_table(summary))
    most_turns = max((max(turns, default=1) for turns, _ in series.values()), default=1)
    plots = [("turns.png", "User turns per session", "turns", {n: t for n, (t, _) in series.items()}, range(1, most_turns + 2))]
    for role in (USER, ASSISTANT):
        plots.append((f"{role}_utterances.png", f"{role.capitalize()} utterance length", summary["length_unit"],
                      {n: lengths[role] for n, (_, lengths) in series.items()}, 40))  # fmt: skip
    for file, title, xlabel, values, bins in plots:
        _overlaid(out / file, title, xlabel, values, bins)
    names = list(summary["stats"])
    keys = [k for k in summary["stats"][names[0]] if k != "skipped_rows"]
    html = _PAGE.render(summary=summary, names=names, keys=keys, plots=[{"file": f, "title": t} for f, t, *_ in plots])
    (out / "report.html").write_text(html)
