"""`ray job submit --working-dir . -- python jobs/serve.py --config configs/tiny.yaml [--detach] [KEY=VALUE ...]`"""

import sys

import _entry  # noqa: F401  (puts the project on sys.path)
from ray_apps.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
