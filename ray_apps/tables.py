"""Tables and pages as Markdown and HTML, for every report here: the pipeline report, `realm eval stats`
and `realm eval show`, the rollout's dataset card and prepare's counts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import jinja2

_PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;max-width:64em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>
</head><body><h1>{{ title }}</h1>
{% for s in sections %}<h2>{{ s.title }}</h2>{% for p in s.text %}<p>{{ p }}</p>{% endfor %}
{% if s.rows %}<table><tr>{% for h in s.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in s.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>{% endif %}
{% for img in s.images %}<img src="{{ img }}" alt="{{ img }}" style="max-width:48%">{% endfor %}
{% endfor %}</body></html>
""")


def cell(value) -> str:
    """A table cell: ``—`` for a missing value."""
    return "—" if value is None else str(value)


def duration(seconds: float) -> str:
    """A span of time in the unit a reader takes in at once: ``0.25 s``, ``12 min``, ``3.5 h``, ``1.9 years``."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    for unit, size, below, digits in (("s", 1, 120, 0), ("min", 60, 7200, 0), ("h", 3600, 172800, 1)):
        if seconds < below:
            return f"{seconds / size:.{digits}f} {unit}"
    days = seconds / 86400
    return f"{days:.1f} days" if days < 365 else f"{days / 365:,.1f} years"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Section:
    """A titled part of a page: paragraphs, then a table, then images."""

    title: str
    header: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def markdown_page(title: str, sections: Iterable[Section]) -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        lines += [f"## {s.title}", ""] + [f"{p}\n" for p in s.text]
        if s.rows:
            lines += [markdown_table(s.header, s.rows), ""]
        lines += [f"![{img}]({img})" for img in s.images] + ([""] if s.images else [])
    return "\n".join(lines)


def html_page(title: str, sections: Iterable[Section]) -> str:
    sections = [
        Section(s.title, s.header, [[cell(c) for c in row] for row in s.rows], s.text, s.images) for s in sections
    ]
    return _PAGE.render(title=title, sections=sections)
