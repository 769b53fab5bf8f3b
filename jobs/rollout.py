"""`ray job submit --working-dir . -- python jobs/rollout.py --config configs/tiny.yaml [--output DIR] [KEY=VALUE ...]`"""

import sys

import _entry  # noqa: F401  (puts the project on sys.path)
from ray_apps.cli import main

sys.exit(main(["rollout", *sys.argv[1:]]))
