"""The layering docs/development.md's Layout section promises: a module imports only the layers above its own, and the
rollout and eval (side by side) never import each other."""

import ast

from ..helpers import ROOT

LAYERS = [
    {"errors", "console", "lazy"},
    {"conversation"},
    {"config"},
    {"records", "layout", "outcomes"},
    {"tables", "user_turns"},
    {"runtime"},
    {"models"},
    {"endpoints", "governor"},
    {"data", "train", "serve"},
    {"rollout", "eval"},
    {"report"},
    {"pipeline"},
    {"cli", "config_reference"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _imports(path):
    """(the importing module's top-level name, each top-level name of ray_apps it imports)."""
    parts = path.relative_to(ROOT / "ray_apps").with_suffix("").parts
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            package = list(parts[:-1])[: len(parts) - node.level]
            target = package + (node.module.split(".") if node.module else [node.names[0].name])
            yield parts[0], target[0]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ray_apps."):
            yield parts[0], node.module.split(".")[1]


def test_every_module_imports_only_the_layers_above_its_own():
    files = sorted((ROOT / "ray_apps").rglob("*.py"))
    assert {p.relative_to(ROOT / "ray_apps").parts[0].removesuffix(".py") for p in files} - {"__init__"} <= set(RANK)
    wrong = sorted(
        {
            (str(p.relative_to(ROOT)), target)
            for p in files
            for module, target in _imports(p)
            if module != target and RANK[target] >= RANK[module]
        }
    )
    assert not wrong, wrong


def test_the_rollout_and_serve_processes_load_no_model_factory():
    """Rollout actors and Serve replicas count tokens and load models; building a new model (torch's LLaMA classes,
    seconds of import in every such process) is only `realm init-model`'s."""
    import subprocess
    import sys

    probe = (
        "import sys, ray_apps.rollout.runner, ray_apps.serve.model_server; "
        "print('ray_apps.models.factory' in sys.modules)"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
    from ray_apps.models import run_init_model  # still importable by name

    assert callable(run_init_model)


def test_the_rollout_and_eval_actors_start_without_torch():
    """The processes of the rollout's and eval's actors (sessions, eval jobs and the answer and judge functions
    they run, an endpoint's governor, the openings index) import neither torch nor transformers unless a tokenizer
    is loaded: with them, importing the session runner's module took 6.8 s of every such process, 2.2 s without."""
    import subprocess
    import sys

    probe = (
        "import sys, ray_apps.rollout.runner, ray_apps.rollout.openings, ray_apps.eval.jobs, ray_apps.eval.answers, "
        "ray_apps.eval.judge, ray_apps.governor; "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
