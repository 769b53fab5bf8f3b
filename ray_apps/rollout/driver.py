"""`realm rollout`: seeds in, a RealChat-style dataset out, through Ray Data actors and two endpoints.

Each seed's key is a hash of its id and the session fingerprint (what decides a session's content, not how many
there are); finished keys are skipped, so rerunning the same command after a kill resumes, raising
``rollout.num_sessions`` after a pilot keeps the pilot's sessions, and the dataset holds every seed exactly once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from pathlib import Path

import ray
import yaml

from ..config import DedupConfig, PipelineConfig, write_run_config
from ..conversation import ASSISTANT, USER
from ..endpoints import ACTOR_CPUS, EndpointError, map_rows, resolve_endpoint
from ..errors import RealmError, failure_share, print_first_traceback
from ..governor import start_governor, stop_governors
from ..layout import RolloutData, RunLayout
from ..outcomes import Outcome
from ..records import read_rows
from ..runtime import Ask, check_fits
from ..tables import duration, markdown_table
from .openings import OpeningIndex
from .progress import follow
from .runner import SessionRunner
from .store import Place, Tally, outcome_index, read_failures, shard_files, tally, write_dataset, write_shard


class RolloutError(RealmError, RuntimeError):
    """A rollout that cannot start or had to stop; the message says why."""


def run_rollout(config: PipelineConfig, output: str | None = None, estimate: bool = False) -> dict:
    """Run (or resume) the rollout; returns the summary written to ``<output>/summary.json``. ``estimate``: only
    print (and return) the projection of the seeds still to run, from the sessions made so far."""
    cfg = config.rollout
    out = Path(output) if output else RunLayout(config).realchat.root
    fingerprint = cfg.session_fingerprint()
    seeds, invalid = _seeds(config, fingerprint)
    keys = {s["key"] for s in seeds} | {o.key for o in invalid}
    index = outcome_index(shard_files(out), keys)
    finished = {k for k, o in index.items() if o.final}
    pending = [s for s in seeds if s["key"] not in finished]
    projection = _projection(config, out, index, len(pending))
    if estimate:
        print(_projection_line(projection, len(pending)), flush=True)
        return projection or {}
    try:
        endpoints = {
            role: resolve_endpoint(config, getattr(cfg, role), f"rollout.{role}") for role in (USER, ASSISTANT)
        }
    except EndpointError as exc:
        raise RolloutError(str(exc)) from None
    write_run_config(config, out)

    openings = OpeningIndex.remote(DedupConfig(threshold=cfg.dedup_threshold), str(out), fingerprint)
    if cfg.mode == "seeded":  # openings are known: deduplicate them here, in seed order
        claimed = ray.get(openings.claim_texts.remote([s["question"] for s in pending]))
        invalid += [
            _failed(s, "duplicate_opening", "repeats an earlier opening question of this run")
            for s, new in zip(pending, claimed)
            if not new
        ]
        pending = [s for s, new in zip(pending, claimed) if new]
    if new_failures := [o for o in invalid if o.key not in finished]:
        write_shard(out, new_failures)
    print(f"[rollout] {len(keys)} seeds: {len(finished)} finished before, {len(pending)} to run -> {out}", flush=True)
    if projection:
        print(_projection_line(projection, len(pending)), flush=True)

    started, stopped_by, this_run = time.time(), None, None
    if pending:
        check_fits(config.ray, "rollout", [Ask("rollout.actors", ACTOR_CPUS, 0.0, cfg.actors)])
        governors = {
            role: start_governor(getattr(cfg, role), resolved.base_url, cfg.breaker_error_rate, cfg.breaker_window)
            for role, resolved in endpoints.items()
        }
        meta = {
            "mode": cfg.mode,
            "simulator": cfg.simulator,
            "user_model": cfg.user.model,
            "assistant_model": cfg.assistant.model,
            "fingerprint": fingerprint,
            "sampling": {
                role: getattr(cfg, role).model_dump(include={"temperature", "top_p", "max_tokens"})
                for role in (USER, ASSISTANT)
            },
        }
        rows = map_rows(
            pending,
            SessionRunner,
            {
                "rollout": cfg.model_dump(mode="json"),
                "endpoints": endpoints,
                "governors": governors,
                "openings": openings,
                "output": str(out),
                "mode_meta": meta,
            },
            actors=cfg.actors,
            batch_size=max(1, cfg.sessions_per_actor // 4),
            blocks=4 * cfg.actors,
        )
        total = len(pending)
        seeds = pending = None  # the dataset holds them now: the driver keeps keys only
        stopped_by, this_run = follow(rows, total, list(governors.values()), out, cfg.progress_interval_s)
        if not stopped_by:  # every session ended; an open breaker stays up for the sessions in flight to read
            stop_governors(governors.values())
    shards = shard_files(out)
    counted = write_dataset(out, shards, outcome_index(shards, keys))
    summary = _summary(config, counted, len(keys), time.time() - started, this_run, projection)
    RolloutData(out).summary.write_text(json.dumps(summary, indent=2) + "\n")
    RolloutData(out).card.write_text(_card(config, summary))
    print(f"[rollout] {summary['sessions']} sessions, {summary['failures']} failures -> {out}", flush=True)
    print_first_traceback("rollout", read_failures(out), RolloutData(out).failures)
    if stopped_by:
        raise RolloutError(
            f"{stopped_by}. Stopped; finished sessions are kept: fix the endpoint and rerun the same command to resume."
        )
    if problem := failure_share(
        summary["failures"], summary["seeds"], cfg.max_failure_fraction, "rollout.max_failure_fraction", "seeds failed"
    ):
        reasons = ", ".join(f"{reason} {n}" for reason, n in summary["failure_reasons"].items())
        raise RolloutError(f"{problem}: {reasons}; every outcome is written, see {RolloutData(out).failures}")
    return summary


def _key(fingerprint: str, seed_id: str) -> str:
    return hashlib.sha256(f"{fingerprint}:{seed_id}".encode()).hexdigest()[:16]


def _failed(seed: dict, reason: str, detail: str) -> Outcome:
    return Outcome.failure(seed["key"], seed["id"], reason, detail)


def _seeds(config: PipelineConfig, fingerprint: str) -> tuple[list[dict], list[Outcome]]:
    """The seeds that can run, with their keys; failures for those that cannot (bad or repeated)."""
    cfg = config.rollout
    if cfg.mode == "free":
        return [{"id": f"free-{i:06d}", "key": _key(fingerprint, f"free-{i:06d}")} for i in range(cfg.num_sessions)], []
    if not cfg.seeds or not Path(cfg.seeds).is_file():
        raise RolloutError(f"rollout.seeds: seeded mode needs a JSONL or Parquet file of seeds, got {cfg.seeds!r}")
    path = Path(cfg.seeds)
    rows = [(line_no, {"_error": problem} if problem else row) for line_no, row, problem in read_rows(path)]
    seeds, invalid, seen = [], [], set()
    for line_no, row in rows:
        seed_id = str(row.get("id", f"line-{line_no}")) if isinstance(row, dict) else f"line-{line_no}"
        seed = {"id": seed_id, "key": _key(fingerprint, seed_id)}
        problem = _seed_problem(row, seed_id, seen)
        if problem:
            invalid.append(_failed(seed, "invalid_seed", f"{path.name} line {line_no}: {problem}"))
            continue
        seen.add(seed_id)
        seeds.append(
            {**seed, "question": row["question"].strip(), **({"answer": row["answer"]} if row.get("answer") else {})}
        )
    return seeds, invalid


def _seed_problem(row, seed_id: str, seen: set) -> str | None:
    if not isinstance(row, dict):
        return "not a JSON object"
    if "_error" in row:
        return row["_error"]
    if "id" not in row:
        return "no id"
    if seed_id in seen:
        return f"id {seed_id!r} repeats an earlier seed"
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        return "no question (a non-empty string)"
    if row.get("answer") is not None and not isinstance(row["answer"], str):
        return "answer is not a string"
    return None


def _cost(config: PipelineConfig, usage: dict[str, Mapping]) -> dict:
    """Dollars of ``usage`` (role -> token counts) at the configured prices, by role and in total."""
    cost = {
        role: round(
            u.get("prompt_tokens", 0) / 1000 * getattr(config.rollout, role).price_per_1k_prompt
            + u.get("completion_tokens", 0) / 1000 * getattr(config.rollout, role).price_per_1k_completion,
            4,
        )
        for role, u in usage.items()
    }
    return {**cost, "total": round(sum(cost.values()), 4)}


def _projection(config: PipelineConfig, out: Path, index: dict[str, Place], pending: int) -> dict | None:
    """What the ``pending`` seeds will cost, from the outcomes kept so far (None before any): tokens by role and
    dollars at their mean, wall time at the rate the last run measured (``summary.json``)."""
    kept = {k: o for k, o in index.items() if o.final}
    if not pending or not kept:
        return None
    made = tally(shard_files(out), kept)
    summary = RolloutData(out).summary
    rate = json.loads(summary.read_text()).get("outcomes_per_second") if summary.is_file() else None
    usage = {
        role: {k: round(u[k] / made.outcomes * pending) for k in ("prompt_tokens", "completion_tokens")}
        for role, u in made.usage.items()
    }
    return {
        "seeds": pending,
        "from_outcomes": made.outcomes,
        "usage": usage,
        "estimated_cost": _cost(config, usage),
        "outcomes_per_second": rate,
        "seconds": round(pending / rate) if rate else None,
    }


def _projection_line(projection: dict | None, pending: int) -> str:
    if not pending:
        return "[rollout] projection: every seed is finished; nothing to run"
    if projection is None:
        return f"[rollout] projection: none yet for {pending:,} seeds: run a pilot first (a small rollout.num_sessions)"
    tokens = "; ".join(
        f"{role} {u['prompt_tokens']:,} prompt / {u['completion_tokens']:,} completion tokens"
        for role, u in projection["usage"].items()
    )
    rate = projection["outcomes_per_second"]
    wall = (
        f"~{duration(projection['seconds'])} at {rate} seeds/s (the last run's rate)"
        if rate
        else "wall time unknown (no earlier run's rate)"
    )
    return (
        f"[rollout] projection for {pending:,} seeds, from the {projection['from_outcomes']:,} made: {tokens}; "
        f"${projection['estimated_cost']['total']:,.2f} at the configured prices; {wall}"
    )


def _summary(
    config: PipelineConfig,
    counted: Tally,
    seeds: int,
    seconds: float,
    this_run: Tally | None,
    projection: dict | None,
) -> dict:
    """Counts, token usage and cost of every seed's outcome; what this run made, and what was projected for it."""
    usage = {role: {k: round(v, 3) for k, v in u.items()} for role, u in counted.usage.items()}
    ran = this_run.outcomes if this_run else 0
    completion = sum(u["completion_tokens"] for u in this_run.usage.values()) if this_run else 0
    return {
        "seeds": seeds,
        "sessions": counted.sessions,
        "failures": counted.failures,
        "stop_reasons": dict(counted.stop_reasons.most_common()),
        "failure_reasons": dict(counted.failure_reasons.most_common()),
        "mean_user_turns": round(counted.user_turns / counted.sessions, 2) if counted.sessions else 0.0,
        "rejected_user_turns": dict(counted.rejected.most_common()),
        "usage": usage,
        # prompt tokens the servers took from their prefix caches (when they report it: both our engines do)
        "prefix_cache_hit_rate": {
            role: round(u["cached_prompt_tokens"] / u["prompt_tokens"], 3) if u.get("prompt_tokens") else 0.0
            for role, u in usage.items()
        },
        "estimated_cost": _cost(config, usage),
        "seconds_this_run": round(seconds, 1),
        "outcomes_this_run": ran,
        "outcomes_per_second": round(ran / seconds, 2) if ran and seconds else None,
        "completion_tokens_per_second": round(completion / seconds, 1) if ran and seconds else None,
        "this_run": {
            "usage": {role: dict(u) for role, u in this_run.usage.items()},
            "estimated_cost": _cost(config, this_run.usage),
        }
        if this_run
        else None,
        "projection": projection,
        "fingerprint": config.rollout.session_fingerprint(),
    }


def _projected(summary: dict) -> str:
    """The card's section on this run: what was projected before it started, and what it took."""
    projection, actual = summary["projection"], summary["this_run"]
    if not projection or not actual:
        return ""

    def tokens(usage: dict, role: str) -> str:
        return f"{usage[role].get('prompt_tokens', 0):,.0f} / {usage[role].get('completion_tokens', 0):,.0f}"

    seconds = projection["seconds"]
    rows = [
        ["seeds", f"{projection['seeds']:,}", f"{summary['outcomes_this_run']:,}"],
        *(
            [f"{name} tokens (prompt / completion)", tokens(projection["usage"], role), tokens(actual["usage"], role)]
            for role, name in ((USER, "user simulator"), (ASSISTANT, "assistant"))
        ),
        ["estimated cost", projection["estimated_cost"]["total"], actual["estimated_cost"]["total"]],
        ["seconds", seconds if seconds is not None else "unknown", summary["seconds_this_run"]],
    ]
    return (
        f"## This run: projected and actual\n\nProjected from the {projection['from_outcomes']:,} seeds made before "
        f"it.\n\n{markdown_table(['', 'projected', 'actual'], rows)}\n\n"
    )


def _card(config: PipelineConfig, summary: dict) -> str:
    """The dataset card: what made the data and what is in it."""

    def counts(reasons: dict) -> str:
        return markdown_table(["reason", "count"], reasons.items()) if reasons else "none"

    usage = summary["usage"]
    facts = markdown_table(
        ["", ""],
        [
            ["seeds", summary["seeds"]],
            ["sessions", summary["sessions"]],
            ["failures", summary["failures"]],
            ["mean user turns", summary["mean_user_turns"]],
            *(
                [
                    f"{name} tokens (prompt / completion)",
                    f"{usage[role].get('prompt_tokens', 0):,} / {usage[role].get('completion_tokens', 0):,}",
                ]
                for role, name in ((USER, "user simulator"), (ASSISTANT, "assistant"))
            ),
            ["estimated cost", summary["estimated_cost"]["total"]],
        ],
    )
    return f"""# {config.run.name}: synthetic multi-turn sessions

Made by `realm rollout` (ReaLM on Ray): a user simulator (`{config.rollout.user.model}`) and an assistant
(`{config.rollout.assistant.model}`) talking through OpenAI-compatible endpoints, mode `{config.rollout.mode}`.

{facts}

{_projected(summary)}## Why sessions stopped

{counts(summary["stop_reasons"])}

## Failures (in `failures.jsonl`, each with its detail)

{counts(summary["failure_reasons"])}

## Resampled user turns

{counts(summary["rejected_user_turns"])}

## Files

- `data/sessions.parquet`, `data/sessions.jsonl`: `{{"id", "messages": [{{"role", "content"}}], "meta"}}`
  (meta: seed id, mode, persona, models, sampling, stop reason, per-role usage; a JSON string in Parquet)
- `data/sharegpt.jsonl`: the same sessions as ShareGPT (`conversations` / `from` / `value`)
- `failures.jsonl`, `summary.json`, `resolved_config.yaml`

## Config (rollout section)

```yaml
{yaml.safe_dump(config.rollout.model_dump(mode="json"), sort_keys=False).rstrip()}
```
"""
