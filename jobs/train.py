"""`ray job submit --working-dir . -- python jobs/train.py --config configs/tiny.yaml --role user [KEY=VALUE ...]`"""

import sys

import _entry  # puts the project on sys.path; the runtime_env of the job

from ray_apps.cli import main

sys.exit(main(["train", *sys.argv[1:]], runtime_env=_entry.runtime_env()))
