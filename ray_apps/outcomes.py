"""How one seed of a rollout ended, whichever way: the one place that knows the two shapes it is written in.

A session is a record in the messages format (``id``, ``messages``, ``meta`` with ``stop_reason``, ``usage``,
``rejected_user_turns``, ...: ``records.py`` lists them); a failure is a line of ``failures.jsonl`` (``id``,
``seed_id``, ``reason``, ``detail``, optionally ``traceback``, the ``messages`` it had, ``usage``,
``rejected_user_turns``). The rollout's shards hold either as ``{"key", "status", "record"}``. Readers take an
``Outcome`` and ask it, instead of branching on the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conversation import make_record

SESSION, FAILURE = "session", "failure"


@dataclass(frozen=True)
class Outcome:
    record: dict  # as written: a session record or a failure record

    @classmethod
    def session(cls, key: str, messages: list[dict], meta: dict) -> Outcome:
        return cls(make_record(key, messages, meta))

    @classmethod
    def failure(
        cls,
        key: str,
        seed_id: str,
        reason: str,
        detail: str,
        *,
        messages: list[dict] | None = None,
        usage: dict | None = None,
        rejected_user_turns: dict | None = None,
        traceback: str | None = None,
    ) -> Outcome:
        record = {"id": key, "seed_id": seed_id, "reason": reason, "detail": detail}
        record |= {"traceback": traceback} if traceback else {}
        record |= {"messages": messages or [], "rejected_user_turns": rejected_user_turns or {}, "usage": usage or {}}
        return cls(record)

    @classmethod
    def from_row(cls, row: dict) -> Outcome:
        """An outcome of a shard's row (``to_row``)."""
        return cls(row["record"])

    def to_row(self) -> dict:
        return {"key": self.key, "status": SESSION if self.is_session else FAILURE, "record": self.record}

    @property
    def is_session(self) -> bool:
        return "reason" not in self.record

    @property
    def key(self) -> str:
        return self.record["id"]

    @property
    def meta(self) -> dict:
        """A session's meta (empty for a failure)."""
        return (self.record.get("meta") or {}) if self.is_session else {}

    @property
    def reason(self) -> str | None:
        """Why a failure failed (None for a session)."""
        return self.record.get("reason")

    @property
    def stop_reason(self) -> str | None:
        """What ended a session (None for a failure)."""
        return self.meta.get("stop_reason")

    @property
    def user_turns(self) -> int:
        """A session's user turns (0 for a failure)."""
        return self.meta.get("user_turns", 0)

    @property
    def usage(self) -> dict[str, dict]:
        """Tokens each role spent on it, by endpoint role."""
        return (self.meta if self.is_session else self.record).get("usage") or {}

    @property
    def rejected_user_turns(self) -> dict[str, int]:
        """The user turns the rollout's filters resampled, by reason."""
        return (self.meta if self.is_session else self.record).get("rejected_user_turns") or {}
