"""docs/config.md's config reference is the one generated from the schema, and it names every key; docs/usage.md's
figures table is the one generated from the figures' declaration."""

from ray_apps.config import PipelineConfig
from ray_apps.config_reference import END, START, generated, reference

from ..helpers import ROOT


def _leaf_keys(model, prefix: str) -> list[str]:
    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():
        nested = [
            a
            for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        container = {list: "[]", dict: ".<name>"}.get(getattr(field.annotation, "__origin__", None), "")
        keys += _leaf_keys(nested[0], f"{prefix}{name}{container}.") if nested else [f"{prefix}{name}"]
    return keys


def test_the_docs_hold_the_generated_reference():
    page = (ROOT / "docs" / "config.md").read_text()
    assert START in page and END in page
    for path, text in generated().items():
        assert path.read_text() == text, f"{path} is stale: run `python -m ray_apps.config_reference`"


def test_the_docs_list_every_figure_with_its_target():
    from ray_apps.eval.figures import FIGURES

    rows = {
        line.split("|")[1].strip(): line
        for line in (ROOT / "docs" / "usage.md").read_text().splitlines()
        if line.startswith("| `")
    }
    for figure in FIGURES:
        bound = " and ".join(f"{s} {v}" for s, v in ((">=", figure.low), ("<=", figure.high)) if v is not None)
        assert f"`{figure.key}`" in rows and f"| {bound}" in rows[f"`{figure.key}`"], figure.key


def test_reference_names_every_key_with_its_default():
    text = reference()
    keys = _leaf_keys(PipelineConfig, "")
    assert len(keys) > 100
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, missing
    assert "| `train.zero_stage` | `int` | `3` |" in text and "| `serve.models[].name` | `str` | required |" in text
