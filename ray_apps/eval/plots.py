"""`realm eval stats`' report: the statistics as a Markdown table, PNG plots (real vs simulated overlaid)
and one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ..conversation import ASSISTANT, USER  # noqa: E402
from ..tables import Section, html_page, markdown_table  # noqa: E402

if TYPE_CHECKING:
    from .stats import Lengths


def stats_table(summary: dict) -> tuple[list[str], list[list]]:
    """(header, rows): a statistic per row, a dataset per column."""
    names = list(summary["stats"])
    keys = [k for k in summary["stats"][names[0]] if k != "skipped_rows"]
    return ["statistic", *names], [[k, *(summary["stats"][n][k] for n in names)] for k in keys]


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


def write_stats_report(out: Path, summary: dict, series: dict[str, Lengths]) -> None:
    """stats.md, turns.png, user_utterances.png, assistant_utterances.png and report.html in ``out``."""
    header, rows = stats_table(summary)
    (out / "stats.md").write_text(markdown_table(header, rows) + "\n")
    most_turns = max((max(lengths.turns, default=1) for lengths in series.values()), default=1)
    plots = [
        (
            "turns.png",
            "User turns per session",
            "turns",
            {n: lengths.turns for n, lengths in series.items()},
            range(1, most_turns + 2),
        )
    ]
    for role in (USER, ASSISTANT):
        plots.append(
            (
                f"{role}_utterances.png",
                f"{role.capitalize()} utterance length",
                summary["length_unit"],
                {n: getattr(lengths, role) for n, lengths in series.items()},
                40,
            )
        )
    for file, title, xlabel, values, bins in plots:
        _overlaid(out / file, title, xlabel, values, bins)
    about = [
        f"Lengths in {summary['length_unit']}; topic similarity (mean pairwise cosine, lower is more diverse) by "
        f"{summary['topic_similarity_method']}.",
        *(f"{name}: {path}" for name, path in summary["datasets"].items()),
    ]
    sections = [
        Section("Side by side", header, rows, about),
        *(Section(title, images=[file]) for file, title, *_ in plots),
    ]
    (out / "report.html").write_text(html_page("Dataset statistics", sections))
