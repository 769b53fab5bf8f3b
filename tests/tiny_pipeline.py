"""The session's run of the embedded tiny default, as a user submits it, in a thread from the session's start.

`ray job submit --working-dir . -- python jobs/pipeline.py --config configs/tiny.yaml`, stopped (`ray job stop`)
when its rollout has written a few sessions and submitted again, which resumes it. It trains for minutes on the
`ray start` cluster of the session while the tests that do not read it run in the test process's own Ray, and each
reader waits for the stage that writes what it reads (``stage``), not for the whole run (``result``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from .helpers import ROOT

ROLLOUT_TIMEOUT_S = 1200  # from the first submission until the rollout has written its first sessions
RESUMED_TIMEOUT_S = 1500
STOPPED = "tiny-stopped"  # the first submission's id


class TinyPipelineJob:
    def __init__(self, head: dict, workdir: Path):
        self.head, self.workdir = head, workdir
        self._outcome: dict | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run_and_keep_the_outcome, name="tiny-pipeline", daemon=True)

    def start(self) -> TinyPipelineJob:
        self._thread.start()
        return self

    def stage(self, name: str, timeout_s: float = 1800) -> dict:
        """The state of stage ``name`` once it is complete (``stages/<name>.json``, written atomically)."""
        path, deadline = self.workdir / "stages" / f"{name}.json", time.time() + timeout_s
        while True:
            state = json.loads(path.read_text()) if path.is_file() else {}
            if state.get("status") == "complete":
                return state
            if not self._thread.is_alive():
                self.result()  # raises the run's error
                raise AssertionError(f"the tiny pipeline ended without completing {name}: {state}")
            assert time.time() < deadline, f"stage {name} not complete in {timeout_s}s: {state}"
            time.sleep(1)

    def result(self) -> dict:
        """The finished run: its working directory and both jobs' console output (``log``, ``stopped_log``)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome

    def _run_and_keep_the_outcome(self) -> None:
        try:
            self._outcome = self._run()
        except BaseException as error:  # re-raised in each test that reads the run
            self._error = error

    def _job(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        ray = str(Path(sys.executable).parent / "ray")
        command = [ray, "job", args[0], "--address", self.head["address"], *args[1:]]
        return subprocess.run(command, env=self.head["env"], capture_output=True, text=True, timeout=timeout)

    def _run(self) -> dict:
        from ray.job_submission import JobStatus, JobSubmissionClient

        pipeline = ["--", "python", "jobs/pipeline.py", "--config", "configs/tiny.yaml", f"run.workdir={self.workdir}"]
        for _ in range(30):  # the head answers `ray job list` a little before its job agent takes submissions
            first = self._job("submit", "--submission-id", STOPPED, "--no-wait", "--working-dir", str(ROOT), *pipeline)
            if "No available agent to submit job" not in first.stderr + first.stdout:
                break
            time.sleep(4)
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
        state, shards = self.workdir / "stages" / "rollout.json", self.workdir / "realchat" / "shards"
        deadline = time.time() + ROLLOUT_TIMEOUT_S
        # polled over HTTP: a `ray job status` process costs 1.8 s of CPU, and polling with it took a core from the job
        jobs = JobSubmissionClient(self.head["address"])
        while not (state.is_file() and sum(len(f.read_text().splitlines()) for f in shards.glob("*.jsonl")) >= 6):
            status = jobs.get_job_status(STOPPED)
            assert status in (JobStatus.PENDING, JobStatus.RUNNING), (status, jobs.get_job_logs(STOPPED)[-4000:])
            assert time.time() < deadline, "no rollout shard in time"
            time.sleep(0.5)
        stopped = self._job("stop", STOPPED)  # its driver is killed mid-rollout
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert json.loads(state.read_text())["status"] == "running"
        resumed = self._job("submit", "--working-dir", str(ROOT), *pipeline, timeout=RESUMED_TIMEOUT_S)
        assert resumed.returncode == 0 and "succeeded" in resumed.stdout, (
            resumed.stdout[-4000:] + resumed.stderr[-2000:]
        )
        return {"workdir": self.workdir, "log": resumed.stdout, "stopped_log": self._job("logs", STOPPED).stdout}
