"""The Grafana dashboard plots every custom metric the project exports, under the names Ray exports them with."""

import json
import re

from ray_apps.train.callbacks import GAUGES

from ..helpers import ROOT

DASHBOARD = ROOT / "configs" / "grafana" / "realm_dashboard.json"
DEFINED = re.compile(r"metrics\.(Counter|Gauge|Histogram)\(\s*\"(realm_\w+)\"")
# Ray exports a metric `x` as `ray_x`: a counter as `ray_x_total`, a histogram as `ray_x_bucket` / `_sum` / `_count`
EXPORTED = {"Counter": ("_total",), "Gauge": ("",), "Histogram": ("_bucket", "_sum", "_count")}


def _defined() -> dict[str, str]:
    found = {
        name: kind for path in (ROOT / "ray_apps").rglob("*.py") for kind, name in DEFINED.findall(path.read_text())
    }
    return found | {f"realm_train_{name}": "Gauge" for name in GAUGES}


def test_every_custom_metric_has_a_panel_and_every_panel_a_metric():
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in panels)
    defined = _defined()
    assert len(defined) >= 17, defined
    for name, kind in defined.items():
        assert any(f"ray_{name}{suffix}{{" in e for e in exprs for suffix in EXPORTED[kind]), (name, kind)
    plotted = {m for e in exprs for m in re.findall(r"ray_(realm_\w+?)(?:_total|_bucket|_sum|_count)?\{", e)}
    assert plotted == set(defined), plotted ^ set(defined)
    rows = [p["title"].split(" ")[0] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Training", "Serving", "Rollout", "Eval"]
