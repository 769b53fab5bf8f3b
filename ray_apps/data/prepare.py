"""`realm prepare`: ShareGPT files to cleaned, deduplicated, segmented conversations (Ray Data).

Stages, in order (each configurable in ``prepare`` and each counted in ``summary.json``):

1. read files, split them into records (JSON array or JSONL; bad lines become rejects);
2. per record, in parallel: parse, HTML to markdown, whitespace, role mapping, merging,
   alternation, length, blocklist, language, and the dedup sketch;
3. once, over all sketches: exact and near duplicates across the whole dataset;
4. per record, in parallel: split into token-bounded segments and assign train/eval.

Output in ``DIR``: ``parquet/{train,eval}/``, ``jsonl/{train,eval}/``, ``rejects.jsonl``,
``summary.json`` and the resolved config.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import ray
import ray.data
from ray.data.expressions import col

from ..config import PipelineConfig, PrepareConfig, write_run_config
from ..conversation import RecordError, parse_sharegpt, printable, split_sharegpt
from ..errors import RealmError, failure_share
from ..layout import FORMATS, SPLITS, PreparedData, RunLayout
from ..models.base import resolve_model
from ..models.tokens import text_token_counter
from ..records import encode_meta
from ..tables import markdown_table
from . import clean
from .dedup import find_duplicates, sketch
from .inputs import resolve_inputs
from .language import UNDETERMINED, detect_language
from .segment import segment, split_of

log = logging.getLogger(__name__)


class PrepareError(RealmError, RuntimeError):
    """The run finished writing but its input was too broken to trust."""


# ---------------------------------------------------------------- stage 1: files to records
def split_file(row: dict) -> list[dict]:
    source = row["path"]
    text = row["bytes"].decode("utf-8", errors="surrogateescape")
    return [
        {
            "source": source,
            "line": line,
            "raw": printable(raw) if error else raw,
            "reason": error.reason if error else "",
            "detail": error.detail if error else "",
        }
        for line, raw, error in split_sharegpt(text)
    ]


# ---------------------------------------------------------------- stage 2: clean one record
def _row(src: dict, **fields) -> dict:
    row = {
        "key": f"{src['source']}:{src['line']}",
        "source": src["source"],
        "line": int(src["line"]),
        "id": "",
        "record": "",
        "reason": "",
        "detail": "",
        "invalid": False,
        "fixes": "{}",
        "exact": "",
        "first_sig": b"",
        "whole_sig": b"",
    }
    row.update(fields)
    return row


def clean_record(src: dict, cfg: PrepareConfig) -> dict:
    """One split-out record to a cleaned record with its dedup sketch, or a reject row."""
    if src["reason"]:
        return _row(src, reason=src["reason"], detail=src["detail"], invalid=True, record=src["raw"])
    try:
        record = parse_sharegpt(src["raw"], cfg.role_map)
    except RecordError as err:
        return _row(src, reason=err.reason, detail=err.detail, invalid=True, record=printable(src["raw"]))
    extra = record.pop("meta")
    record["id"] = record["id"] or f"{Path(src['source']).stem}-{src['line']}"
    fixes: Counter = Counter()
    try:
        record = clean.clean_text(record, cfg, fixes)
        record = clean.fix_structure(record, cfg, fixes)
        clean.check_length(record, cfg)
        clean.check_blocklist(record, cfg.blocklist)
        language, confidence = detect_language("\n".join(m["content"] for m in record["messages"]))
        if cfg.languages and language not in cfg.languages and language != UNDETERMINED:
            raise RecordError("language", f"{language} ({confidence})")
    except RecordError as err:
        return _row(
            src, id=record["id"], reason=err.reason, detail=err.detail, record=json.dumps(record, ensure_ascii=False)
        )
    record["meta"] = {
        "source": src["source"],
        "line": int(src["line"]),
        "language": language,
        "extra": json.dumps(extra, ensure_ascii=False) if extra else "",
    }
    sk = sketch(record, cfg.dedup)
    return _row(
        src,
        id=record["id"],
        record=json.dumps(record, ensure_ascii=False),
        fixes=json.dumps(fixes),
        exact=sk["exact"],
        first_sig=np.asarray(sk["first_sig"], dtype=np.uint32).tobytes(),
        whole_sig=np.asarray(sk["whole_sig"], dtype=np.uint32).tobytes(),
    )


def clean_batch(batch: dict, cfg: PrepareConfig) -> dict:
    rows = [clean_record(dict(zip(batch, values)), cfg) for values in zip(*batch.values())]
    columns = rows[0].keys() if rows else _row({"source": "", "line": 0}).keys()
    return {k: [r[k] for r in rows] for k in columns}


# ---------------------------------------------------------------- stage 4: segment and split
def segment_batch(batch: dict, cfg: PrepareConfig, duplicates: dict, seed: int, simulator_prompt: str) -> dict:
    count = text_token_counter(cfg.segment.tokenizer)  # loaded once per worker process
    out: dict[str, list] = {
        k: [] for k in ("key", "source", "line", "id", "split", "record", "reason", "detail", "dropped")
    }

    def emit(key, source, line, rid, split, record, reason="", detail="", dropped=0):
        for k, v in zip(out, (key, source, line, rid, split, record, reason, detail, dropped)):
            out[k].append(v)

    for key, source, line, text in zip(batch["key"], batch["source"], batch["line"], batch["record"]):
        record = json.loads(text)
        if key in duplicates:
            emit(key, source, line, record["id"], "", text, *duplicates[key])
            continue
        try:
            segments, dropped = segment(record, cfg.segment, count, simulator_prompt)
        except RecordError as err:
            emit(key, source, line, record["id"], "", text, err.reason, err.detail)
            continue
        split = split_of(record["id"], cfg.eval_fraction, seed)
        for i, seg in enumerate(segments):
            seg["meta"]["split"] = split
            emit(
                key,
                source,
                line,
                seg["id"],
                split,
                json.dumps(seg, ensure_ascii=False),
                dropped=dropped if i == 0 else 0,
            )
    return out


def expand_batch(batch: dict, parquet: bool) -> dict:
    """Records in the messages format; ``meta`` as ``records.py`` writes it to Parquet, or an object for JSONL."""
    records = [json.loads(text) for text in batch["record"]]
    meta = [encode_meta(r["meta"]) if parquet else r["meta"] for r in records]
    return {"id": [r["id"] for r in records], "messages": [r["messages"] for r in records], "meta": meta}


# ---------------------------------------------------------------- driver
def _read(groups, batch_size: int) -> ray.data.Dataset:
    datasets = [ray.data.read_binary_files(files, include_paths=True, filesystem=fs) for files, fs in groups]
    ds = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    # One file is one block; re-block the records so every worker gets batches of a big file.
    return ds.flat_map(split_file).repartition(target_num_rows_per_block=batch_size)


def _sketches_in_input_order(cleaned: ray.data.Dataset):
    rows = []
    for b in (
        cleaned.filter(expr=col("reason") == "")
        .select_columns(["source", "line", "key", "id", "exact", "first_sig", "whole_sig"])
        .iter_batches(batch_size=4096, batch_format="numpy")
    ):
        rows += zip(b["source"], b["line"].tolist(), b["key"], b["id"], b["exact"], b["first_sig"], b["whole_sig"])
    rows.sort(key=lambda r: (r[0], r[1]))
    for source, line, key, rid, exact, first, whole in rows:
        yield {
            "key": key,
            "id": rid,
            "exact": exact,
            "first_sig": np.frombuffer(first, dtype=np.uint32),
            "whole_sig": np.frombuffer(whole, dtype=np.uint32),
        }


def _write_rejects(path: Path, *datasets: ray.data.Dataset) -> None:
    with path.open("w", encoding="utf-8") as f:
        for ds in datasets:
            for row in ds.filter(expr=col("reason") != "").iter_rows():
                text = row["record"]
                try:
                    record = json.loads(text) if text else None
                except json.JSONDecodeError:
                    record = text
                item = {k: row[k] for k in ("source", "line", "id", "reason", "detail")}
                f.write(json.dumps({**item, "record": record}, ensure_ascii=False) + "\n")


def _print_table(summary: dict) -> None:
    rows = [["input records", summary["input_records"]]]
    rows += [[f"rejected: {reason}", n] for reason, n in sorted(summary["rejected"].items(), key=lambda kv: -kv[1])]
    rows += [[f"fixed: {fix}", n] for fix, n in sorted(summary["fixes"].items())]
    rows += [["conversations kept", summary["conversations_kept"]]]
    rows += [[f"segments {split}", n] for split, n in summary["segments"].items()]
    print(markdown_table(["prepare", "count"], rows), flush=True)


def segment_tokenizer(config: PipelineConfig) -> str | None:
    """The tokenizer segments are measured in: ``prepare.segment.tokenizer``, else ``model.base``'s, else none (the
    approximation, for the tiny model whose tokenizer is trained after prepare)."""
    return config.prepare.segment.tokenizer or config.model.base


def run_prepare(config: PipelineConfig, inputs: list[str] | None = None, output: str | None = None) -> dict:
    """Run the prepare stage; returns the summary (also written to ``DIR/summary.json``)."""
    cfg = config.prepare
    if tokenizer := segment_tokenizer(config):  # workers load it by path: a GGUF file is read once, here
        cfg = cfg.model_copy(
            update={"segment": cfg.segment.model_copy(update={"tokenizer": resolve_model(tokenizer, config)})}
        )
    groups = resolve_inputs(list(inputs or cfg.inputs))
    out = Path(output) if output else RunLayout(config).real.root
    prepared = PreparedData(out)
    for split in SPLITS:  # a rerun replaces, never appends
        for fmt in FORMATS:
            shutil.rmtree(prepared.split(split, fmt), ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_run_config(config, out)
    started = time.time()
    tasks = ray.data.TaskPoolStrategy(size=cfg.num_workers)

    cleaned = (
        _read(groups, cfg.batch_size)
        .map_batches(clean_batch, fn_kwargs={"cfg": cfg}, batch_size=cfg.batch_size, compute=tasks)
        .materialize()
    )
    duplicates = find_duplicates(_sketches_in_input_order(cleaned), cfg.dedup)
    segmented = (
        cleaned.filter(expr=col("reason") == "")
        .select_columns(["key", "source", "line", "record"])
        .map_batches(
            segment_batch,
            fn_kwargs={
                "cfg": cfg,
                "duplicates": duplicates,
                "seed": config.run.seed,
                "simulator_prompt": config.train.simulator_prompt,
            },
            batch_size=cfg.batch_size,
            compute=tasks,
        )
        .materialize()
    )
    counts: dict[str, int] = {}
    for split in SPLITS:
        kept = segmented.filter(expr=(col("reason") == "") & (col("split") == split))
        part = kept.map_batches(expand_batch, fn_kwargs={"parquet": True}).materialize()
        counts[split] = part.count()
        if counts[split]:
            part.write_parquet(str(prepared.split(split)))
            kept.map_batches(expand_batch, fn_kwargs={"parquet": False}).write_json(str(prepared.split(split, "jsonl")))
    _write_rejects(prepared.rejects, cleaned, segmented)

    summary = _summarize(cleaned, segmented, counts)
    summary.update(
        inputs=[f for files, _ in groups for f in files], output=str(out), seconds=round(time.time() - started, 2)
    )
    prepared.summary.write_text(json.dumps(summary, indent=2) + "\n")
    _print_table(summary)
    if problem := failure_share(
        summary["invalid_records"],
        summary["input_records"],
        cfg.max_invalid_fraction,
        "prepare.max_invalid_fraction",
        "input records are malformed",
    ):
        raise PrepareError(f"{problem}; see {prepared.rejects}")
    return summary


def _summarize(cleaned: ray.data.Dataset, segmented: ray.data.Dataset, counts: dict) -> dict:
    rejected: Counter = Counter()
    fixes: Counter = Counter()
    languages: Counter = Counter()
    total = invalid = 0
    for b in cleaned.select_columns(["reason", "invalid", "fixes"]).iter_batches(batch_format="numpy"):
        total += len(b["reason"])
        invalid += int(b["invalid"].sum())
        rejected.update(r for r in b["reason"] if r)
        for f in b["fixes"]:
            if f != "{}":
                fixes.update(json.loads(f))
    kept = set()
    dropped = 0
    for b in segmented.select_columns(["key", "reason", "dropped", "record"]).iter_batches(batch_format="numpy"):
        rejected.update(r for r in b["reason"] if r)
        dropped += int(b["dropped"].sum())
        for key, reason, text in zip(b["key"], b["reason"], b["record"]):
            if not reason and key not in kept:
                kept.add(key)
                languages[json.loads(text)["meta"]["language"]] += 1
    if dropped:
        fixes["exchange_over_max_tokens_dropped"] += dropped
    return {
        "input_records": total,
        "invalid_records": invalid,
        "invalid_fraction": round(invalid / total, 6) if total else 0.0,
        "rejected": dict(rejected.most_common()),
        "fixes": dict(sorted(fixes.items())),
        "conversations_kept": len(kept),
        "segments": counts,
        "languages": dict(languages.most_common()),
    }
