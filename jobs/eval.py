"""`ray job submit --working-dir . -- python jobs/eval.py {answers,judge,show,stats,simulator} --config configs/tiny.yaml [...]`"""

import sys

import _entry  # noqa: F401  (puts the project on sys.path)
from ray_apps.cli import main

sys.exit(main(["eval", *sys.argv[1:]]))
