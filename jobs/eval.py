"""`ray job submit --working-dir . -- python jobs/eval.py COMMAND --config configs/tiny.yaml [...]`

COMMAND: answers, judge, show, stats or simulator (as `realm eval COMMAND`)."""

import sys

import _entry  # puts the project on sys.path; the runtime_env of the job

from ray_apps.cli import main

sys.exit(main(["eval", *sys.argv[1:]], runtime_env=_entry.runtime_env()))
