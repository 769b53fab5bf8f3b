"""`realm rollout`: seeds in, a RealChat-style dataset out, through Ray Data actors and two endpoints.

Each seed's key is a hash of its id and the session fingerprint; finished keys are skipped, so
rerunning the same command after a kill resumes, and the dataset holds every seed exactly once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import ray
import yaml
from ray.util import metrics

from ..config import PipelineConfig, write_run_config
from ..conversation import ASSISTANT, USER
from ..endpoints import EndpointError, map_rows, resolve_endpoint
from ..errors import RealmError, failure_share, print_first_traceback
from ..governor import start_governor, stop_governors, tripped
from ..layout import RolloutData, RunLayout
from ..records import read_rows
from ..tables import markdown_table
from .openings import OpeningIndex
from .runner import SessionRunner
from .store import collect, finished_keys, write_dataset, write_shard


class RolloutError(RealmError, RuntimeError):
    """A rollout that cannot start or had to stop; the message says why."""


def run_rollout(config: PipelineConfig, output: str | None = None) -> dict:
    """Run (or resume) the rollout; returns the summary written to ``<output>/summary.json``."""
    cfg = config.rollout
    out = Path(output) if output else RunLayout(config).realchat.root
    try:
        endpoints = {
            role: resolve_endpoint(config, getattr(cfg, role), f"rollout.{role}") for role in (USER, ASSISTANT)
        }
    except EndpointError as exc:
        raise RolloutError(str(exc)) from None
    fingerprint = cfg.session_fingerprint()
    seeds, invalid = _seeds(config, fingerprint)
    keys = [s["key"] for s in seeds] + [r["key"] for r in invalid]
    write_run_config(config, out)

    done = finished_keys(out)
    openings = OpeningIndex.remote(cfg.dedup_threshold)
    earlier = [
        next(m["content"] for m in r["record"]["messages"] if m["role"] == USER)
        for r in done.values()
        if r["status"] == "session"
    ]
    # the run so far is part of the global dedup (calls run in order)
    ray.get([openings.claim.remote(text) for text in earlier])
    pending = [s for s in seeds if s["key"] not in done]
    if cfg.mode == "seeded":  # openings are known: deduplicate them here, in seed order
        claimed = ray.get([openings.claim.remote(s["question"]) for s in pending])
        duplicates = [s for s, new in zip(pending, claimed) if not new]
        invalid += [
            _failed(s, "duplicate_opening", "repeats an earlier opening question of this run") for s in duplicates
        ]
        pending = [s for s, new in zip(pending, claimed) if new]
    if new_failures := [r for r in invalid if r["key"] not in done]:
        write_shard(out, new_failures)
    print(f"[rollout] {len(keys)} seeds: {len(done)} finished before, {len(pending)} to run -> {out}", flush=True)

    started = time.time()
    stopped_by = None
    if pending:
        governors = {
            role: start_governor(getattr(cfg, role), args["base_url"], cfg.breaker_error_rate, cfg.breaker_window)
            for role, args in endpoints.items()
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
            blocks=4 * cfg.actors,  # small batches: frequent shards
        )
        stopped_by = _follow(rows, len(pending), list(governors.values()), cfg.progress_interval_s)
        if not stopped_by:  # every session ended; an open breaker stays up for the sessions in flight to read
            stop_governors(governors.values())
    sessions, failures = collect(out, keys)
    write_dataset(out, sessions, failures)
    ran = {s["key"] for s in pending}
    summary = _summary(config, sessions, failures, len(keys), time.time() - started, ran)
    RolloutData(out).summary.write_text(json.dumps(summary, indent=2) + "\n")
    RolloutData(out).card.write_text(_card(config, summary))
    print(f"[rollout] {summary['sessions']} sessions, {summary['failures']} failures -> {out}", flush=True)
    print_first_traceback("rollout", failures, RolloutData(out).failures)
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


def _failed(seed: dict, reason: str, detail: str) -> dict:
    record = {"id": seed["key"], "seed_id": seed["id"], "reason": reason, "detail": detail, "messages": [], "usage": {}}
    return {"key": seed["key"], "status": "failure", "record": record}


def _seeds(config: PipelineConfig, fingerprint: str) -> tuple[list[dict], list[dict]]:
    """The seeds that can run, with their keys; failure rows for those that cannot (bad or repeated)."""
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


def _follow(rows, total: int, governors: list, interval: float) -> str | None:
    """Consume the outcome rows with a progress bar and a summary line every ``interval`` s; returns
    the circuit breaker's message if one opened (the run then stops)."""
    from tqdm.auto import tqdm

    done_metric = metrics.Gauge("realm_rollout_done", "Seeds finished in this run.")
    counts, tokens, started, last = Counter(), 0, time.time(), time.time()
    with tqdm(total=total, desc="rollout", unit="session") as bar:
        for row in rows:
            counts[row["status"]] += 1
            usage = json.loads(row["usage"])
            tokens += sum(u.get("completion_tokens", 0) for u in usage.values())
            bar.update(1)
            bar.set_postfix(failures=counts["failure"], tok_s=f"{tokens / max(time.time() - started, 1e-9):.0f}")
            done_metric.set(sum(counts.values()))
            if time.time() - last >= interval:
                last = time.time()
                print(
                    f"[rollout] {sum(counts.values())}/{total} done, {counts['failure']} failed, "
                    f"{tokens / (last - started):.0f} completion tokens/s",
                    flush=True,
                )
                if reason := tripped(governors):
                    return reason
    return tripped(governors)


def _summary(
    config: PipelineConfig, sessions: list[dict], failures: list[dict], seeds: int, seconds: float, ran: set[str]
) -> dict:
    """Counts, token usage and cost of every seed's outcome; the rate of the sessions this run (``ran``) wrote."""
    cfg = config.rollout
    usage = {role: Counter() for role in (USER, ASSISTANT)}
    for record in sessions:
        for role, u in record["meta"]["usage"].items():
            usage[role].update(u)
    for record in failures:
        for role, u in record.get("usage", {}).items():
            usage[role].update(u)
    cost = {
        role: round(
            u["prompt_tokens"] / 1000 * getattr(cfg, role).price_per_1k_prompt
            + u["completion_tokens"] / 1000 * getattr(cfg, role).price_per_1k_completion,
            4,
        )
        for role, u in usage.items()
    }
    turns = [r["meta"]["user_turns"] for r in sessions]
    rejected = Counter()
    for r in sessions:
        rejected.update(r["meta"]["rejected_user_turns"])
    for f in failures:  # failures resample too (records of earlier versions carry no counts)
        rejected.update(f.get("rejected_user_turns", {}))
    return {
        "seeds": seeds,
        "sessions": len(sessions),
        "failures": len(failures),
        "stop_reasons": dict(Counter(r["meta"]["stop_reason"] for r in sessions).most_common()),
        "failure_reasons": dict(Counter(f["reason"] for f in failures).most_common()),
        "mean_user_turns": round(sum(turns) / len(turns), 2) if turns else 0.0,
        "rejected_user_turns": dict(rejected.most_common()),
        "usage": {role: {k: round(v, 3) for k, v in u.items()} for role, u in usage.items()},
        # prompt tokens the servers took from their prefix caches (when they report it: both our engines do)
        "prefix_cache_hit_rate": {
            role: round(u["cached_prompt_tokens"] / u["prompt_tokens"], 3) if u["prompt_tokens"] else 0.0
            for role, u in usage.items()
        },
        "estimated_cost": {**cost, "total": round(sum(cost.values()), 4)},
        "seconds_this_run": round(seconds, 1),
        "completion_tokens_per_second": round(_completion_tokens(sessions, failures, ran) / seconds, 1)
        if seconds and ran
        else None,
        "fingerprint": cfg.session_fingerprint(),
    }


def _completion_tokens(sessions: list[dict], failures: list[dict], keys: set[str]) -> int:
    """Both roles' completion tokens in the outcomes of ``keys``."""
    usages = [r["meta"]["usage"] for r in sessions if r["id"] in keys]
    usages += [f.get("usage", {}) for f in failures if f["id"] in keys]
    return sum(u.get("completion_tokens", 0) for usage in usages for u in usage.values())


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

## Why sessions stopped

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
