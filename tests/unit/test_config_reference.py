"""docs/config.md's config reference is the one generated from the schema, and it names every key."""

from ray_apps.config import PipelineConfig
from ray_apps.config_reference import END, START, reference, replace_block

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
    assert replace_block(page) == page, "docs/config.md's reference is stale: run `python -m ray_apps.config_reference`"


def test_reference_names_every_key_with_its_default():
    text = reference()
    keys = _leaf_keys(PipelineConfig, "")
    assert len(keys) > 100
    missing = [k for k in keys if f"| `{k}` |" not in text]
    assert not missing, missing
    assert "| `train.zero_stage` | `int` | `3` |" in text and "| `serve.models[].name` | `str` | required |" in text
