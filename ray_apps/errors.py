"""The one base of every error a user can act on: the `realm` command prints its message and exits with its code."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable

# The failure reason of an item whose work raised an exception nobody expected (a bug, or an answer no code handles).
INTERNAL_ERROR = "internal_error"


class RealmError(Exception):
    """An error with a message that says what to fix; ``exit_code`` is the `realm` command's exit status.

    2: the command cannot start (a config key, an input path, a model); 1: a stage started and had to stop.
    """

    exit_code = 1


class StartError(RealmError):
    """A command that cannot start: bad config, missing input or model. Exit status 2."""

    exit_code = 2


class InputError(StartError, ValueError):
    """An input path that is missing, empty or holds nothing usable; the message names it."""


def failure_share(failed: int, total: int, limit: float, key: str, what: str) -> str | None:
    """The message for a run in which more than ``limit`` (config ``key``) of ``total`` items failed, else None;
    ``what`` says what ``failed`` counts ("input records are malformed")."""
    if not total or failed / total <= limit:
        return None
    return f"{failed} of {total} {what} ({failed / total:.1%} > {key}={limit})"


def internal_failure(exc: Exception) -> dict:
    """The ``reason``, ``detail`` and ``traceback`` of a failure record for ``exc`` (call it in its handler)."""
    return {"reason": INTERNAL_ERROR, "detail": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


def print_first_traceback(stage: str, failures: Iterable[dict], path) -> None:
    """Say how many ``failures`` are internal errors and print the first one's traceback (all are in ``path``)."""
    internal = (f for f in failures if f.get("reason") == INTERNAL_ERROR)
    first = next(internal, None)
    if first:
        print(
            f"[{stage}] {1 + sum(1 for _ in internal)} failed with {INTERNAL_ERROR} (an unexpected exception; every "
            f"traceback is in {path}). The first:\n{first.get('traceback') or first['detail']}",
            file=sys.stderr,
            flush=True,
        )
