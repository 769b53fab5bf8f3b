"""Resolve input paths (local files, directories, globs, or fsspec URLs) before any work starts."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import fsspec
from pyarrow.fs import FSSpecHandler, PyFileSystem

from ..errors import InputError

SHAREGPT_SUFFIXES = (".json", ".jsonl")


def _is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _expand_local(path: str) -> list[str]:
    path = path.removeprefix("file://")
    matches = sorted(glob.glob(path, recursive=True)) if glob.has_magic(path) else [path]
    files = []
    for match in matches:
        p = Path(match)
        if p.is_dir():
            files += sorted(str(f.resolve()) for f in p.rglob("*") if f.suffix in SHAREGPT_SUFFIXES and f.is_file())
        elif p.is_file():
            files.append(str(p.resolve()))
    if not files:
        raise InputError(f"input not found or holds no .json/.jsonl files: {path}")
    empty = [f for f in files if os.path.getsize(f) == 0]
    if len(empty) == len(files):
        raise InputError(f"input is empty: {path}")
    return files


def _expand_url(url: str) -> tuple[fsspec.AbstractFileSystem, list[str]]:
    try:
        fs, root = fsspec.core.url_to_fs(url)
        matches = fs.glob(root) if glob.has_magic(root) else ([root] if fs.exists(root) else [])
        files = []
        for match in matches:
            if fs.isdir(match):
                files += sorted(f for f in fs.find(match) if f.endswith(SHAREGPT_SUFFIXES))
            else:
                files.append(match)
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"cannot read input {url}: {exc}") from None
    if not files:
        raise InputError(f"input not found or holds no .json/.jsonl files: {url}")
    return fs, files


def resolve_inputs(paths: list[str]) -> list[tuple[list[str], PyFileSystem | None]]:
    """Group the files behind ``paths`` by filesystem: ``[(files, pyarrow_filesystem_or_None)]``.

    Fails with ``InputError`` naming the path when one is missing or empty.
    """
    if not paths:
        raise InputError("no input given: pass --input PATH or set prepare.inputs")
    local: list[str] = []
    remote: dict[str, tuple[fsspec.AbstractFileSystem, list[str]]] = {}
    for path in paths:
        if _is_url(path):
            fs, files = _expand_url(path)
            remote.setdefault(fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0], (fs, []))[1].extend(
                files
            )
        else:
            local += _expand_local(path)
    groups: list[tuple[list[str], PyFileSystem | None]] = []
    if local:
        groups.append((sorted(set(local)), None))
    for fs, files in remote.values():
        groups.append((sorted(set(files)), PyFileSystem(FSSpecHandler(fs))))
    return groups
