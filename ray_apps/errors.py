"""The one base of every error a user can act on: the `realm` command prints its message and exits with its code."""

from __future__ import annotations


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
