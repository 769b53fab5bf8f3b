"""Reading and writing conversation records: one encoding for every file this project writes.

A record is ``{"id", "messages": [{"role", "content"}], "meta": {...}}`` (``conversation.py``). On disk:

- **JSONL**: one record per line, ``meta`` a JSON object;
- **Parquet**: columns ``id`` (string), ``messages`` (list of ``{role, content}`` structs) and ``meta``
  (a JSON string: its keys differ between stages and rows, which a Parquet struct cannot hold).

Documented ``meta`` keys: ``ended_naturally`` (prepare: the last segment of a conversation that ended;
UserGPT learns the end marker from it), ``split``, ``segment``, ``num_segments``, ``source``, ``line``,
``language``; rollout: ``seed_id``, ``stop_reason``, ``user_turns``, ``persona``, ``usage``,
``rejected_user_turns``, ``mode``, the models and their sampling. Readers take both encodings of
``meta`` (and ShareGPT rows), so every reader accepts what every writer here writes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .conversation import RecordError, from_sharegpt, make_record
from .errors import InputError

MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
PARQUET_SCHEMA = pa.schema([("id", pa.string()), ("messages", MESSAGES_TYPE), ("meta", pa.string())])


def encode_meta(meta: Mapping[str, Any] | None) -> str:
    """``meta`` as its Parquet column holds it."""
    return json.dumps(dict(meta or {}), ensure_ascii=False)


def decode_meta(value: Any) -> dict:
    """``meta`` as a dict, from either encoding (or none)."""
    if value is None or value == "":
        return {}
    return json.loads(value) if isinstance(value, str) else dict(value)


def parquet_row(record: Mapping[str, Any]) -> dict:
    return {"id": record["id"], "messages": record["messages"], "meta": encode_meta(record.get("meta"))}


def record_from_row(row: Mapping[str, Any]) -> dict:
    """A record from a row of any file written here (or a ShareGPT object); ``RecordError`` names what is wrong."""
    if "conversations" in row:
        return from_sharegpt(dict(row))
    messages = row.get("messages")
    try:
        messages = json.loads(messages) if isinstance(messages, str) else messages
        meta = decode_meta(row.get("meta"))
    except json.JSONDecodeError as exc:
        raise RecordError("invalid_json", f"messages or meta: {exc.msg}") from None
    try:  # a list from JSON, an array of dicts from Ray Data
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    except (TypeError, KeyError, IndexError):
        raise RecordError("bad_messages", "messages must be a list of {role, content}") from None
    return make_record(str(row.get("id") or ""), messages, meta)


def read_rows(path: str | Path) -> Iterable[tuple[int, dict | None, str]]:
    """``(line, row, problem)`` of a Parquet or JSONL file; a line that is not a JSON object has a problem
    (and no row), and reading goes on."""
    path = Path(path)
    if path.suffix == ".parquet":
        yield from ((i, row, "") for i, row in enumerate(pq.read_table(path).to_pylist(), 1))
        return
    with path.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, None, f"invalid_json: {exc.msg}"
                continue
            yield (number, row, "") if isinstance(row, dict) else (number, None, "not_an_object")


def record_files(path: str | Path) -> list[Path]:
    """A file, or the Parquet files under a directory (else its JSON-lines files, ``.jsonl`` or Ray Data's
    ``.json``; a rollout's shards left out)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"no dataset at {path}")
    if p.is_file():
        return [p]
    lines = sorted(f for f in p.rglob("*.json*") if f.suffix in (".json", ".jsonl") and "shards" not in f.parts)
    return sorted(p.rglob("*.parquet")) or lines


def read_records(path: str | Path) -> tuple[list[dict], Counter]:
    """Every record of a file or directory (Parquet, JSONL, ShareGPT JSONL), and the rows skipped, by reason."""
    records, skipped = [], Counter()
    for file in record_files(path):
        for _, row, problem in read_rows(file):
            if not problem:
                try:
                    records.append(record_from_row(row))
                    continue
                except RecordError as exc:
                    problem = f"{exc.reason}: {exc.detail[:80]}" if exc.detail else exc.reason
            skipped[problem] += 1
    return records, skipped


class JsonlWriter:
    """``path`` replaced at once by the rows written to it (a context manager): they go to a temporary file that is
    renamed into place on a clean exit, so a killed writer leaves the old file or the new one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self.file = self.tmp.open("w", encoding="utf-8")

    def write(self, row: Mapping[str, Any]) -> None:
        self.file.write(json.dumps(row, ensure_ascii=False) + "\n")

    def _close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, *_) -> None:
        self._close()
        if kind is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


class RecordWriter(JsonlWriter):
    """Records to ``path`` (``.parquet`` in row groups, or ``.jsonl``, by its suffix), one at a time, replaced at
    once as ``JsonlWriter`` does."""

    ROWS_PER_GROUP = 2000

    def _open(self) -> None:
        self.parquet = self.path.suffix == ".parquet"
        if self.parquet:
            self.writer, self.rows = pq.ParquetWriter(self.tmp, PARQUET_SCHEMA), []
        else:
            super()._open()

    def write(self, record: Mapping[str, Any]) -> None:
        if not self.parquet:
            super().write({"id": record["id"], "messages": record["messages"], "meta": dict(record.get("meta") or {})})
            return
        self.rows.append(parquet_row(record))
        if len(self.rows) == self.ROWS_PER_GROUP:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(pa.Table.from_pylist(self.rows, schema=PARQUET_SCHEMA))
        self.rows = []

    def _close(self) -> None:
        if not self.parquet:
            return super()._close()
        if self.rows:
            self._flush()
        self.writer.close()


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace ``path`` with ``rows`` at once: a killed writer leaves the old file or the new one."""
    with JsonlWriter(path) as out:
        for row in rows:
            out.write(row)


def write_records(records: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    """``records`` to ``path`` (``.parquet`` or ``.jsonl``, by its suffix), replaced at once."""
    with RecordWriter(path) as out:
        for record in records:
            out.write(record)
