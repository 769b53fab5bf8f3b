"""The reference blocks of docs/ generated from the code so they cannot drift: every config key (docs/config.md,
from the schema) and the simulator's figures (docs/usage.md, from ``eval.figures.FIGURES``).

``python -m ray_apps.config_reference`` rewrites the blocks between their markers; a test checks the files hold
what this module generates.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .config import PipelineConfig

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
FIGURES_START, FIGURES_END = "<!-- figures:start -->", "<!-- figures:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _section_type(annotation) -> type[BaseModel] | None:
    """The Section a field holds (itself, in a list, or optional), else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin := typing.get_origin(annotation):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    text = json.dumps(value, ensure_ascii=False)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _section_type(field.annotation)
        description = (field.description or "").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")
        if nested is not None:
            container = typing.get_origin(field.annotation)
            kind = {list: "list of ", dict: "map of names to "}.get(container, "")
            rows.append(
                f"| `{key}` | {kind}{nested.__name__}"
                f"{' or null' if type(None) in typing.get_args(field.annotation) else ''} | | {description} |"
            )
            rows += _rows(nested, key + {list: "[].", dict: ".<name>."}.get(container, "."))
        else:
            kind = _type_name(field.annotation).replace("|", "\\|")  # a pipe inside a table cell must be escaped
            rows.append(f"| `{key}` | `{kind}` | {_default(field)} | {description} |")
    return rows


def reference() -> str:
    """Every key of the schema, grouped by section, as Markdown tables."""
    parts = []
    for name, field in PipelineConfig.model_fields.items():
        parts += [
            f"#### `{name}` — {field.description}",
            "",
            "| key | type | default | description |",
            "|---|---|---|---|",
        ]
        parts += _rows(_section_type(field.annotation), f"{name}.") + [""]
    return "\n".join(parts)


def replace_block(text: str, start: str = START, end: str = END, block: str | None = None) -> str:
    """``text`` with the block between the markers replaced (by default, by the current config reference)."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{reference() if block is None else block}\n{end}{tail}"


def generated() -> dict[Path, str]:
    """Each generated page of docs/ as it should read now."""
    from .eval.figures import markdown_table

    config, usage = DOCS / "config.md", DOCS / "usage.md"
    return {
        config: replace_block(config.read_text()),
        usage: replace_block(usage.read_text(), FIGURES_START, FIGURES_END, markdown_table()),
    }


if __name__ == "__main__":
    for page, text in generated().items():
        page.write_text(text)
        print(f"generated reference written to {page}")
