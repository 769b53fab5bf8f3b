"""`ray job submit --working-dir . -- python jobs/train.py --config configs/tiny.yaml --role user [KEY=VALUE ...]`"""

import sys

import _entry  # noqa: F401  (puts the project on sys.path)
from ray_apps.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
