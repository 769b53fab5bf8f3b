"""`ray job submit --working-dir . -- python jobs/eval.py {answers,judge,show,stats,simulator} --config configs/tiny.yaml [...]`"""

import sys

import _entry  # puts the project on sys.path; the runtime_env of the job
from ray_apps.cli import main

sys.exit(main(["eval", *sys.argv[1:]], runtime_env=_entry.runtime_env()))
