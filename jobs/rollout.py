"""`ray job submit --working-dir . -- python jobs/rollout.py --config configs/tiny.yaml [--output DIR] [KEY=VALUE]`"""

import sys

import _entry  # puts the project on sys.path; the runtime_env of the job

from ray_apps.cli import main

sys.exit(main(["rollout", *sys.argv[1:]], runtime_env=_entry.runtime_env()))
