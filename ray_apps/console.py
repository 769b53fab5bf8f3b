"""What a command prints: everything goes to its log under ``<workdir>/logs/``, the console gets what a user reads.

``captured(log)`` sends the process's stdout and stderr (file descriptors 1 and 2: Python, C++, subprocesses and the
worker output Ray forwards to the driver) through a pipe, or a pseudo-terminal when the console is a terminal (so
libraries still draw progress bars; a file or pipe gets each bar once, in its last state). Every byte goes to the
log; a line goes to the console
unless it is noise: a worker's line that is not one of ours (``[train user] ...``) or an error, or an INFO line of
Ray's own logging (Ray Data's progress blocks, the streaming executor's plans). Progress bars pass as they update.
``stage_log(path)`` also copies what is printed meanwhile to a stage's own log.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
import traceback
import tty
from collections.abc import Iterator
from pathlib import Path

_SYNC = b"\x1erealm-console-sync\x1e"  # written through the pipe: when the pump reads it, all before it is logged
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")
# Ray prefixes what another process printed: "(ActorName pid=123[, ip=...])", "(pid=gcs_server)", "(raylet)"
_WORKER = re.compile(rb"^\((?:[^()]*? )?(?:pid=[^()]*|raylet)\) ?(?P<body>.*)$", re.S)
_OURS = re.compile(rb"^\[[a-z][\w .:-]*\] ")  # our tagged lines: [train user], [serve], [rollout], ...
_PROBLEM = re.compile(rb"Traceback|\bERROR\b|Error:|Exception:|\bFATAL\b")
# Ray's own logging below warnings (Python's "date INFO", Serve's "INFO date", C++'s "[date I|W|E pid tid]"), and
# warnings that ask nothing of a user
_RAY_NOISE = re.compile(
    rb"^(\d{4}-\d\d-\d\d [\d:,]+\s+INFO |(INFO|DEBUG) \d{4}-\d\d-\d\d |\[\d{4}-\d\d-\d\d [\d:,]+ [IWE] \d+ \d+\] )"
    rb"|Progress bars (for operators )?disabled|Token authentication is enabled"
    rb"|\[real_accelerator\.py:\d+:get_accelerator\] Setting accelerator to CPU"  # DeepSpeed on a CPU run
)


_APPENDED_INFO = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+INFO ")
_APPENDED_WORKER = re.compile(rb"(?:\x1b\[[0-9;]*m)?\((?:[^()]*? )?pid=[^()]*\)")


def glued(line: bytes) -> tuple[bytes, bytes]:
    """``line`` split where a worker's line (Ray's prefix) was written onto its end, after a progress bar's last
    state: (what came before, the worker's line), each then judged on its own."""
    appended = _APPENDED_WORKER.search(line, 1)
    return (line[: appended.start()], line[appended.start() :]) if appended else (line, b"")


def visible(line: bytes) -> bytes:
    """``line`` without a Ray INFO record written onto its end (a progress bar, then Ray Data's "finished" line)."""
    appended = _APPENDED_INFO.search(line, 1)
    return line[: appended.start()] if appended else line


def _first(line: bytes) -> bytes:
    """A line's first state (a progress bar redraws itself after carriage returns)."""
    return next((part for part in line.split(b"\r") if part.strip()), b"")


def _last(line: bytes) -> bytes:
    return next((part for part in reversed(line.split(b"\r")) if part.strip()), b"")


def on_console(line: bytes, previous: bool = True) -> bool:
    """Whether a printed line (without its newline) is shown on the console; ``previous``: whether the line before
    it was (an indented line continues it: a traceback, a warning's source line, a logged dict)."""
    plain = _ANSI.sub(b"", line).lstrip(b"\r")
    if not plain.strip():
        return False
    if plain[:1] in (b" ", b"\t"):
        return previous
    worker = _WORKER.match(plain)
    if worker:
        body = worker["body"]
        return bool(_OURS.match(body) or _PROBLEM.search(body))
    return not _RAY_NOISE.search(plain)


class _Capture:
    def __init__(self, log: Path):
        self.lock, self.synced = threading.Lock(), threading.Event()
        self.heard = time.monotonic()  # when the pump last read anything
        self.logs = [self._open(log)]
        self.console = os.dup(1)
        self.saved = (os.dup(1), os.dup(2))
        self.live = os.isatty(1)
        if self.live:  # a terminal gets a terminal: libraries keep their progress bars (Ray Data's among them)
            self.read, write = os.openpty()
            tty.setraw(write)  # no output processing: lines end in "\n" as written
        else:
            self.read, write = os.pipe()
        for fd in (1, 2):
            os.dup2(write, fd)
        os.close(write)
        self.thread = threading.Thread(target=self._pump, name="realm-console", daemon=True)
        self.thread.start()

    @staticmethod
    def _open(path: Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("ab", buffering=0)
        handle.write(f"===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n".encode())
        return handle

    def _pump(self) -> None:
        # ``pending``: the line so far, of which the console has been shown (or denied) the first ``decided`` bytes;
        # ``keep``: the line's verdict, taken on its first bytes (a worker's prefix, a Ray log record's stamp)
        pending, decided, keep, open_line, previous = b"", 0, None, False, True
        while chunk := self._next():
            self.heard = time.monotonic()
            synced = _SYNC in chunk
            chunk = chunk.replace(_SYNC, b"")
            with self.lock:
                for log in self.logs:
                    log.write(chunk)
            if synced:
                self.synced.set()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = []
            for line in lines:
                line, worker = glued(line)
                if keep is None:
                    keep = previous = on_console(visible(_first(line)), previous)
                part = visible(line[decided:] if self.live else _last(line))  # a file gets a bar's last state
                if keep and (decided == 0 or not self.live or on_console(part)):
                    out.append(part + b"\n")
                elif open_line:
                    out.append(b"\n")
                if worker and on_console(visible(worker)):
                    out.append(visible(worker) + b"\n")
                decided, keep, open_line = 0, None, False
            if self.live and b"\r" in pending[decided:]:  # a progress bar moved: show it now, not when its line ends
                if keep is None:
                    keep = previous = on_console(visible(_first(pending)), previous)
                part = visible(pending[decided:])
                if keep and (decided == 0 or on_console(part)):
                    out.append(part)
                    open_line = True
                decided = len(pending)
            self._show(b"".join(out))
        if pending and on_console(visible(_first(pending)), previous):
            self._show(visible(_last(pending)))

    def sync(self) -> None:
        """Return once the pump has logged everything printed before the call."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.synced.clear()
        os.write(1, _SYNC)
        self.synced.wait(10)

    def _settle(self, quiet_s: float = 0.5, at_most_s: float = 1.5) -> None:
        """While Ray is connected, wait until nothing was printed for ``quiet_s``: Ray forwards what its workers print
        a moment later (a Serve replica's last lines as its app is deleted), and once the console is restored, such a
        line would reach it unfiltered."""
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return
        deadline = time.monotonic() + at_most_s
        while time.monotonic() < deadline and time.monotonic() - self.heard < quiet_s:
            time.sleep(0.05)

    def _next(self) -> bytes:
        try:
            return os.read(self.read, 65536)
        except OSError:  # a terminal's other end closed
            return b""

    def _show(self, data: bytes) -> None:
        if data and self.console is not None:
            try:
                os.write(self.console, data)
            except OSError:  # the console went away (`| head`): keep logging
                self.console = None

    def close(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self._settle()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)  # the pipe's last write end closes: the pump drains it and ends
            os.close(saved)
        self.thread.join(5)  # the pump has drained the pipe (or a child process still holds it: go on)
        os.close(self.read)
        console, self.console = self.console, None
        if console is not None:
            os.close(console)
        for log in self.logs:
            log.close()


_active: _Capture | None = None


@contextlib.contextmanager
def captured(log: Path, quiet: bool = True) -> Iterator[Path | None]:
    """Print through the console filter (``quiet``) and keep everything in ``log``; yields ``log`` (None when not
    quiet, or inside another capture)."""
    global _active
    if not quiet or _active is not None:
        yield None
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _active = _Capture(log)
    try:
        yield log
    except BaseException:
        sys.stderr.flush()
        with _active.lock:
            _active.logs[0].write("".join(traceback.format_exc()).encode())
        raise
    finally:
        capture, _active = _active, None
        capture.close()


@contextlib.contextmanager
def stage_log(path: Path) -> Iterator[Path | None]:
    """While a capture is active, also copy what is printed to ``path``; yields it (None without a capture)."""
    if _active is None:
        yield None
        return
    _active.sync()  # what was printed before goes to the logs open until now
    handle = _active._open(path)
    with _active.lock:
        _active.logs.append(handle)
    try:
        yield path
    finally:
        _active.sync()
        with _active.lock:
            _active.logs.remove(handle)
        handle.close()
