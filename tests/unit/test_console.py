"""The console filter: stage lines, problems and progress bars on the console, everything in the log."""

import subprocess
import sys
import textwrap

from ray_apps.console import on_console

WORKER_NOISE = [
    b"\x1b[36m(RayTrainWorker pid=2200)\x1b[0m              932 LOAD_FAST                4 (chat_template)",
    b"(ServeReplica:realm:router pid=31) INFO 2026-12-01 22:45:01,123 realm_router w -- POST /v1/chat/completions 200",
    b"(RayTrainWorker pid=2200, ip=10.0.0.2) Tokenizing train dataset:   0%|          | 0/418",
    b"\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started on node: a54d",
]
RAY_NOISE = [
    b"2026-12-01 22:42:17,244\tINFO logging_progress.py:174 -- ======= Running Dataset: dataset_0357 ======",
    b'INFO 2026-12-02 00:03:14,874 serve 32362 -- Started Serve in namespace "serve".',
    b"[2026-12-02 00:03:26,363 E 32362 32362] core_worker.cc:2465: Actor with class name: 'MapWorker'",
    b"2026-12-02 00:01:36,504\tWARNING __init__.py:39 -- Progress bars for operators disabled. To enable, set ...",
    b"[2026-12-02 07:17:47,125] [WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to CPU. If you",
]
SHOWN = [
    b"[pipeline] 5/8 rollout: running -> /tmp/q1/realchat",
    b"\x1b[36m(RayTrainWorker pid=2200)\x1b[0m [train user] step 40/468 loss 3.1 lr 1.9e-03 tokens/s 3800",
    b"(MapWorker(MapBatches(SessionRunner)) pid=77) Traceback (most recent call last):",
    b"(RayTrainWorker pid=9) RuntimeError: CUDA out of memory",
    b"2026-12-02 00:01:36,504\tWARNING worker.py:1 -- The node is running low on memory",
    b"| conversations kept | 432 |",
]


def test_noise_is_kept_off_the_console_and_our_lines_and_problems_are_not():
    assert not [line for line in WORKER_NOISE + RAY_NOISE if on_console(line)]
    assert all(on_console(line) for line in SHOWN)
    # an indented line continues the line before it: a logged dict after an INFO line, a traceback's frames
    assert not on_console(b" 'graceful_shutdown_timeout_s': 20,", previous=False)
    assert on_console(b'  File "/work/ray_apps/rollout/driver.py", line 44, in run_rollout', previous=True)


def test_a_captured_process_keeps_everything_in_its_log_and_shows_the_rest(tmp_path):
    log = tmp_path / "logs" / "run.log"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from ray_apps.console import captured, stage_log
        with captured({str(log)!r}):
            print("[pipeline] 1/2 prepare: running", flush=True)
            os.write(2, {WORKER_NOISE[0]!r} + b"\\n")  # written to the file descriptor, as Ray and C++ code do
            os.write(2, b"(RayTrainWorker pid=9) Tokenizing: 0/9\\rTokenizing: 9/9\\n")  # a worker's progress bar
            with stage_log({str(tmp_path / "logs" / "stage.log")!r}):
                for done in range(3):  # a progress bar: updates without a newline
                    sys.stderr.write(f"\\rrollout: {{done}}/2"); sys.stderr.flush(); time.sleep(0.05)
                # Ray Data logs onto the bar's line
                sys.stderr.write("2026-12-02 01:22:48,495\\tINFO streaming_executor.py:371 -- Dataset finished\\n")
                print({RAY_NOISE[0].decode()!r}, flush=True)
                for done in range(2):  # a worker's line that Ray prints onto a bar's line: judged on its own
                    sys.stderr.write(f"\\rtrain: {{done}}/1"); sys.stderr.flush(); time.sleep(0.05)
                os.write(2, b"\\x1b[36m(ServeReplica:realm:usergpt pid=7)\\x1b[0m FutureWarning: deprecated\\n")
            os.system("echo '[rollout] from a child process'")
            print("[pipeline] complete", flush=True)
        print("after the capture", flush=True)
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    console = (run.stdout + run.stderr).decode()
    assert run.returncode == 0, console
    assert "[pipeline] 1/2 prepare: running" in console and "[pipeline] complete" in console
    assert "rollout: 2/2" in console and "[rollout] from a child process" in console
    assert "rollout: 0/2" not in console  # not a terminal: a progress bar is shown once, in its last state
    assert "LOAD_FAST" not in console and "Running Dataset" not in console and "streaming_executor" not in console
    assert "Tokenizing" not in console
    assert "train: 1/1" in console and "FutureWarning" not in console and "ServeReplica" not in console
    assert "after the capture" in console  # the console is back
    everything = log.read_text()
    for text in ("[pipeline] 1/2 prepare", "LOAD_FAST", "rollout: 2/2", "Running Dataset", "FutureWarning"):
        assert text in everything
    assert "after the capture" not in everything
    stage = (tmp_path / "logs" / "stage.log").read_text()
    assert "rollout: 2/2" in stage and "Running Dataset" in stage and "[pipeline] 1/2" not in stage


def test_a_terminal_keeps_getting_a_terminal(tmp_path):
    """On a terminal the capture reads through a pseudo-terminal: libraries still see one (Ray Data then draws its
    progress bar instead of logging blocks), and lines are not rewritten."""
    import os
    import pty

    script = (
        "import sys, time\nfrom ray_apps.console import captured\n"
        f"with captured({str(tmp_path / 'run.log')!r}):\n"
        "    print('[check] a tty:', sys.stdout.isatty(), flush=True)\n"
        "    for done in range(3):\n"
        "        sys.stderr.write(f'\\rbar {done}/2'); sys.stderr.flush(); time.sleep(0.05)\n"
        "    sys.stderr.write('\\n')\n"
    )
    parent, child = pty.openpty()
    run = subprocess.run([sys.executable, "-c", script], stdout=child, stderr=child, timeout=60)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(parent)
    assert run.returncode == 0, seen
    assert b"[check] a tty: True" in seen
    assert b"\rbar 0/2\rbar 1/2\rbar 2/2" in seen  # a terminal sees the bar move
    assert "[check] a tty: True\n" in (tmp_path / "run.log").read_text()
