"""`ray job submit --working-dir . -- python jobs/prepare.py --config configs/tiny.yaml [KEY=VALUE ...]`"""

import sys

import _entry  # noqa: F401  (puts the project on sys.path)
from ray_apps.cli import main

sys.exit(main(["prepare", *sys.argv[1:]]))
