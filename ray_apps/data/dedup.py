"""Exact and near-duplicate detection across the whole dataset.

Sketching (a normalised-text hash and MinHash signatures, with datasketch) is per record and
runs in parallel on Ray Data; the decision needs every record at once, so ``find_duplicates``
runs once over all sketches, in input order: the first occurrence is kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from ..config import DedupConfig
from ..conversation import SYSTEM, opening

_WORD = re.compile(r"\w+")
_MINHASH_SEED = 1


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def exact_hash(record: dict) -> str:
    """Hash of the conversation's text with case, punctuation and spacing normalised away."""
    text = "\x1e".join(f"{m['role']}:{' '.join(words(m['content']))}" for m in record["messages"])
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def signature(words: list[str], cfg: DedupConfig) -> np.ndarray:
    k = cfg.shingle_words
    shingles = {" ".join(words[i : i + k]).encode() for i in range(max(1, len(words) - k + 1))}
    minhash = MinHash(num_perm=cfg.num_perm, seed=_MINHASH_SEED)
    minhash.update_batch(list(shingles))
    return minhash.hashvalues


def sketch(record: dict, cfg: DedupConfig) -> dict:
    """What ``find_duplicates`` needs of one record; signatures are empty lists when unused."""
    first_words = words(opening(record["messages"]) or "")
    whole_words = words(" ".join(m["content"] for m in record["messages"] if m["role"] != SYSTEM))
    use_first = cfg.near and len(first_words) >= cfg.min_first_turn_words
    return {
        "exact": exact_hash(record),
        "first_sig": signature(first_words, cfg).tolist() if use_first else [],
        "whole_sig": signature(whole_words, cfg).tolist() if cfg.near and whole_words else [],
    }


class NearDuplicateIndex:
    """Kept texts by MinHash signature; ``matches`` gives the kept keys at least ``cfg.threshold`` similar
    (estimated Jaccard). LSH is tuned against false negatives; its candidates are then checked."""

    def __init__(self, cfg: DedupConfig):
        self.threshold = cfg.threshold
        self.scheme = MinHash(num_perm=cfg.num_perm, seed=_MINHASH_SEED).scheme
        try:
            self.lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm, weights=(0.1, 0.9))
        except ValueError:  # near 1 the best banding is one band of every row, which datasketch refuses (b < 2):
            # two bands find every candidate one band would, and each candidate is checked in `matches`
            self.lsh = MinHashLSH(num_perm=cfg.num_perm, params=(2, cfg.num_perm // 2))
        self.kept: dict[str, LeanMinHash] = {}

    def minhash(self, hashvalues) -> LeanMinHash:
        return LeanMinHash(seed=_MINHASH_SEED, hashvalues=np.asarray(hashvalues), scheme=self.scheme)

    def matches(self, minhash: LeanMinHash) -> list:
        return [key for key in self.lsh.query(minhash) if self.kept[key].jaccard(minhash) >= self.threshold]

    def add(self, key, minhash: LeanMinHash) -> None:
        self.lsh.insert(key, minhash, check_duplication=False)
        self.kept[key] = minhash


def find_duplicates(sketches: Iterable[dict], cfg: DedupConfig) -> dict[str, tuple[str, str]]:
    """``{key: (reason, detail)}`` for every record that repeats an earlier one.

    ``sketches`` yields dicts with ``key``, ``id`` and the fields of ``sketch``, in input order.
    Ids must be unique too: a second record with an id already kept is a ``duplicate_id``.
    """
    indexes = {"first_sig": NearDuplicateIndex(cfg), "whole_sig": NearDuplicateIndex(cfg)}
    reasons = {"first_sig": "near_duplicate_first_turn", "whole_sig": "near_duplicate_conversation"}
    seen_exact: dict[str, str] = {}
    seen_ids: set[str] = set()
    duplicates: dict[str, tuple[str, str]] = {}
    for s in sketches:
        key, rid = s["key"], s["id"]
        if rid in seen_ids:
            duplicates[key] = ("duplicate_id", f"id {rid!r} already kept")
            continue
        if cfg.exact and s["exact"] in seen_exact:
            duplicates[key] = ("exact_duplicate", f"of {seen_exact[s['exact']]}")
            continue
        minhashes = {field: index.minhash(s[field]) for field, index in indexes.items() if len(s[field])}
        found = None
        for field, minhash in minhashes.items():
            if match := indexes[field].matches(minhash):
                found = (reasons[field], f"of {min(match)}")
                break
        if found:
            duplicates[key] = found
            continue
        seen_ids.add(rid)
        seen_exact.setdefault(s["exact"], rid)
        for field, minhash in minhashes.items():
            indexes[field].add(rid, minhash)
    return duplicates
