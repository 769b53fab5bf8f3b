"""The `hf` engine: batched decoding with transformers, per-sequence sampling, streamed text deltas.

A :class:`DecodeBatch` holds the sequences being decoded together: requests join it between steps
(their prompts prefilled in one forward, their KV cache merged in), every step samples one token
for each sequence, and a sequence leaves as soon as it finishes. Each keeps its own sampling
settings (temperature, top-p, seed), stop strings and token budget, and yields :class:`Delta`
objects: the text that became final in that step.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicLayer

from ..models.loading import load_model, load_tokenizer


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    skip_special_tokens: bool = True
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias added to its logit)


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool = False  # deltas as text appears, or the whole completion at once


@dataclass(frozen=True)
class Delta:
    """New text of one sequence after one step; ``finish_reason`` is set on its last delta."""

    text: str
    tokens: int  # tokens generated in this step (0 or 1)
    finish_reason: str | None = None  # "stop" | "length"
    cached_tokens: int = 0  # on the last delta: prompt tokens whose keys and values came from the prefix cache
    replica: str = ""  # on the last delta: the replica that decoded it


@dataclass
class _Sequence:
    """One sequence being decoded: its tokens, its text, how much of it was sent, and when it stops.

    Text is detokenized incrementally (a short window of tokens per step, as vLLM and TGI do), so a
    step costs the same at token 10 and token 1,000, and an incomplete UTF-8 character is never sent.
    """

    request: GenerationRequest
    tokenizer: object
    stop_ids: frozenset[int]
    cached: int = 0  # prompt tokens reused from the prefix cache
    generator: torch.Generator | None = field(init=False)
    ids: list[int] = field(default_factory=list)
    text: str = ""  # decoded text of complete characters
    sent: int = 0  # characters of ``text`` already yielded
    prefix_offset: int = 0  # detokenization window: ids[prefix_offset:read_offset] are in ``text``
    read_offset: int = 0

    def __post_init__(self) -> None:
        seed = self.request.params.seed
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def push(self, token: int) -> Delta:
        params = self.request.params
        if token in self.stop_ids:
            return self._finish("stop")
        self.ids.append(token)
        self._detokenize()
        for stop in params.stop:
            cut = self.text.find(stop, max(0, self.sent - len(stop) + 1))
            if cut >= 0:
                return Delta(self.text[self.sent : cut], 1, "stop")
        if len(self.ids) >= params.max_tokens:
            return self._finish("length")
        end = len(self.text) - _held_back(self.text, params.stop)  # a tail that may grow into a stop string waits
        delta = Delta(self.text[self.sent : end] if end > self.sent else "", 1)
        self.sent = max(self.sent, end)
        return delta

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.request.params.skip_special_tokens)

    def _detokenize(self, final: bool = False) -> None:
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        after = self._decode(self.ids[self.prefix_offset :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self.text += after[len(before) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)

    def _finish(self, reason: str) -> Delta:
        self._detokenize(final=True)
        return Delta(self.text[self.sent :], 1, reason)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    longest = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:k]):
                longest = k
                break
    return longest


def _sample(logits: torch.Tensor, sequences: list[_Sequence]) -> list[int]:
    """Next token of each row: greedy at temperature 0, else temperature + top-p sampling.

    A seeded request draws its random numbers from its own generator, so its text does not depend
    on what else shares the batch.
    """
    params = [s.request.params for s in sequences]
    if any(p.logit_bias for p in params):
        logits = logits.clone()
        for row, p in enumerate(params):
            for token, bias in p.logit_bias:
                logits[row, token] += bias
    tokens = [0] * len(sequences)
    greedy = [i for i, p in enumerate(params) if p.temperature == 0]
    rows = [i for i, p in enumerate(params) if p.temperature > 0]
    if greedy:
        for i, token in zip(greedy, logits[greedy].argmax(dim=-1).tolist()):
            tokens[i] = token
    if rows:
        temperature = torch.tensor([params[i].temperature for i in rows], device=logits.device).unsqueeze(1)
        probs = (logits[rows] / temperature).softmax(dim=-1)
        top_p = torch.tensor([params[i].top_p for i in rows], device=logits.device)
        generators = [sequences[i].generator for i in rows]
        for i, token in zip(rows, _sample_nucleus(probs, top_p, generators).tolist()):
            tokens[i] = token
    return tokens


def _sample_nucleus(probs: torch.Tensor, top_p: torch.Tensor, generators: list) -> torch.Tensor:
    """One token per row from ``probs`` restricted to the row's nucleus (the most likely tokens whose
    mass reaches ``top_p``) and renormalised, as sorting and truncating would give, without sorting
    the vocabulary. Rejection sampling, as FlashInfer does: draw by inverse CDF from the tokens above
    a pivot; accept the token if the tokens more likely than it weigh at most top_p, else make it the
    pivot (every nucleus token is more likely than it) and draw again."""
    # kept by a row still undecided after the last round (only degenerate, e.g. NaN, rows)
    picked = probs.argmax(dim=-1)
    pending = torch.arange(len(probs), device=probs.device)
    pivot = None  # the first draw is from the whole distribution
    seeded = {row: g for row, g in enumerate(generators) if g is not None}
    for _ in range(64):  # each round removes at least the rejected token; a few rounds suffice in practice
        if not len(pending):
            break
        p = probs[pending]
        candidates = p if pivot is None else p * (p > pivot.unsqueeze(1))
        cdf = candidates.cumsum(dim=-1)
        uniform = torch.rand(len(pending))
        if seeded:
            for k, row in enumerate(pending.tolist()):
                if row in seeded:
                    uniform[k] = torch.rand((), generator=seeded[row])
        uniform = uniform.to(probs.device)
        token = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(1), right=True).clamp(max=cdf.shape[1] - 1)
        chosen = p.gather(1, token)
        more_likely = (p * (p > chosen)).sum(dim=-1)
        accepted = (more_likely <= top_p[pending]) | (top_p[pending] >= 1)
        picked[pending[accepted]] = token.squeeze(1)[accepted]
        pending, pivot = pending[~accepted], chosen.squeeze(1)[~accepted]
    return picked


class PrefixCache:
    """Keys and values of finished sequences, so a prompt that extends one (the next turn of a session,
    which resends the whole history) prefills only its new tokens. Entries are found by hashes of
    their whole ``block``-token prefixes, as vLLM's prefix caching does, so a lookup costs a few dict
    probes however many sessions share an opening. Least recently used entries go first once
    ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int, block: int = 16):
        self.max_bytes, self.block = max_bytes, block
        # id -> (ids, kv, bytes, block hashes)
        self.entries: OrderedDict[int, tuple[np.ndarray, list, int, list[int]]] = OrderedDict()
        self.by_block: dict[int, int] = {}  # hash of a block-aligned prefix -> the newest entry that has it
        self.bytes, self.next_id, self.hits, self.reused_tokens = 0, 0, 0, 0

    def _hashes(self, ids: Sequence[int]) -> list[int]:
        """One hash per whole block: of the block and everything before it."""
        hashes, h = [], 0
        for end in range(self.block, len(ids) + 1, self.block):
            h = hash((h, tuple(ids[end - self.block : end])))
            hashes.append(h)
        return hashes

    def put(self, ids: list[int], kv: list) -> None:
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        hashes = self._hashes(ids)
        if not hashes or size > self.max_bytes:
            return
        entry, self.next_id = self.next_id, self.next_id + 1
        self.entries[entry] = (np.asarray(ids), kv, size, hashes)
        self.by_block.update(dict.fromkeys(hashes, entry))
        self.bytes += size
        while self.bytes > self.max_bytes:
            old, (_, _, old_size, old_hashes) = self.entries.popitem(last=False)
            for h in old_hashes:
                if self.by_block.get(h) == old:
                    del self.by_block[h]
            self.bytes -= old_size

    def match(self, prompt: list[int]) -> tuple[int, list] | None:
        """(tokens reused, their keys and values) for the entry sharing the longest prefix with ``prompt``."""
        hashes = self._hashes(prompt[:-1])  # at least one prompt token is left to compute the next logits
        found = next((self.by_block[h] for h in reversed(hashes) if h in self.by_block), None)
        if found is None:
            return None
        ids, kv, _, _ = self.entries[found]
        n = min(len(ids), len(prompt) - 1)
        differ = np.flatnonzero(ids[:n] != np.asarray(prompt[:n]))
        length = int(differ[0]) if len(differ) else n
        if length < self.block:  # a hash collision
            return None
        self.entries.move_to_end(found)
        self.hits += 1
        self.reused_tokens += length
        return length, [(k[:, :, :length], v[:, :, :length]) for k, v in kv]


class HFEngine:
    """A causal LM from a local directory or hub id; decodes through :class:`DecodeBatch`."""

    def __init__(
        self,
        path: str,
        *,
        dtype: str = "auto",
        device: str | None = None,
        token_env: str = "HF_TOKEN",
        prefix_cache_mb: float = 0,
    ):
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20)) if prefix_cache_mb > 0 else None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype == "auto":
            dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        self.tokenizer = load_tokenizer(path, token_env)
        self.model = load_model(path, token_env, dtype=getattr(torch, dtype)).to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self.stop_ids = frozenset(eos)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else (eos or [0])[0]
        # transformers 5.2x renamed `past_key_values` to `cache` (the old name warns); older ones know only the old
        self.cache_kwarg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Cache) -> torch.Tensor:
        """Logits of the last position of each row (float, on the model's device); ``cache`` grows by ``ids``."""
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                **{self.cache_kwarg: cache},
                use_cache=True,
                logits_to_keep=1,
            )
        return out.logits[:, -1, :].float()


@dataclass
class _Rows:
    """Rows ready to decode: per-layer keys and values, attention mask, last positions, next-token logits."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    mask: torch.Tensor
    positions: torch.Tensor
    logits: torch.Tensor
    sequences: list[_Sequence]
    keys: list[object]


class DecodeBatch:
    """The sequences decoded together. Continuous batching: requests join between steps, and a
    finished sequence leaves at once, so the batch stays full while callers come and go.

    Rows are right-aligned so every sequence's last token sits in the last column; the attention
    mask hides the padding (which may also lie between a cached prefix and the rest of a prompt)
    and each row carries its own positions.
    """

    def __init__(self, engine: HFEngine):
        self.engine = engine
        self._reset()

    def _reset(self) -> None:
        self.sequences: list[_Sequence] = []
        self.keys: list[object] = []  # the caller's key of each row
        self.cache: Cache | None = None
        self.mask = self.positions = self.logits = None

    def __len__(self) -> int:
        return len(self.sequences)

    def add(self, requests: Sequence[GenerationRequest], keys: Sequence[object]) -> None:
        """Prefill ``requests`` and merge them into the batch. A prompt that extends a sequence in the
        prefix cache (a session's next turn) prefills only its new tokens. Prompts with a cached
        prefix share one forward, the others another, and both join the batch in one copy."""
        fresh, hits = [], []
        for request, key in zip(requests, keys):
            hit = self.engine.prefix_cache.match(request.prompt_ids) if self.engine.prefix_cache else None
            (hits if hit else fresh).append((request, key, hit or (0, [])))
        self._merge([self._prefill(group) for group in (fresh, hits) if group])

    def _prefill(self, group: list[tuple[GenerationRequest, object, tuple[int, list]]]) -> _Rows:
        """One forward over prompts whose first ``cached`` tokens have keys and values ``kv`` already."""
        cached_width = max(cached for _, _, (cached, _) in group)
        new = [request.prompt_ids[cached:] for request, _, (cached, _) in group]
        new_width = max(map(len, new))
        ids = torch.full((len(group), new_width), self.engine.pad_id, dtype=torch.long)
        positions = torch.zeros((len(group), new_width), dtype=torch.long)
        mask = torch.zeros((len(group), cached_width + new_width), dtype=torch.long)
        for row, ((_, _, (cached, _)), tokens) in enumerate(zip(group, new)):
            ids[row, new_width - len(tokens) :] = torch.tensor(tokens)
            positions[row, new_width - len(tokens) :] = torch.arange(cached, cached + len(tokens))
            mask[row, cached_width - cached : cached_width] = 1
            mask[row, cached_width + new_width - len(tokens) :] = 1
        cache = Cache(layer_class_to_replicate=DynamicLayer)
        if cached_width:
            for layer, prefixes in enumerate(zip(*(kv for _, _, (_, kv) in group))):
                cache.update(
                    _stack_right([k for k, _ in prefixes], cached_width),
                    _stack_right([v for _, v in prefixes], cached_width),
                    layer,
                )
        logits = self.engine.forward(ids, mask, positions, cache)
        sequences = [
            _Sequence(request, self.engine.tokenizer, self.engine.stop_ids, cached) for request, _, (cached, _) in group
        ]
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        return _Rows(kv, mask, positions[:, -1:], logits, sequences, [key for _, key, _ in group])

    def _merge(self, parts: list[_Rows]) -> None:
        """The batch becomes its rows followed by ``parts``' rows, all right-aligned to the widest."""
        if self.sequences:
            kv = [(layer.keys, layer.values) for layer in self.cache.layers]
            parts = [_Rows(kv, self.mask, self.positions, self.logits, self.sequences, self.keys), *parts]
        width = max(part.mask.shape[1] for part in parts)
        layers = []
        for layer in zip(*(part.kv for part in parts)):
            keys, values = (_stack_right([kv[i] for kv in layer], width, spare=_SPARE_COLUMNS) for i in (0, 1))
            layers.append(_GrowingLayer.holding(keys, values, width))
        self.cache = Cache(layers=layers)
        self.mask = _stack_right([part.mask for part in parts], width)
        self.positions = torch.cat([part.positions for part in parts])
        self.logits = torch.cat([part.logits for part in parts])
        self.sequences = [seq for part in parts for seq in part.sequences]
        self.keys = [key for part in parts for key in part.keys]

    def step(self, cancelled: Collection[object] = ()) -> list[tuple[object, Delta]]:
        """Sample one token for every sequence; returns (key, delta) pairs. Finished and cancelled
        sequences leave the batch; the rest advance one position."""
        if not self.sequences:
            return []
        tokens = _sample(self.logits, self.sequences)
        out, keep = [], []
        for row, (seq, key, token) in enumerate(zip(self.sequences, self.keys, tokens)):
            delta = seq.push(token)
            if delta.finish_reason:
                delta = replace(delta, cached_tokens=seq.cached)
            out.append((key, delta))
            if delta.finish_reason is None and key not in cancelled:
                keep.append(row)
        if len(keep) < len(self.sequences):
            if self.engine.prefix_cache:
                for row in sorted(set(range(len(self.sequences))) - set(keep)):
                    self._remember(row)
            keep = self._keep(keep)
        if not self.sequences:
            return out
        tokens = torch.tensor([tokens[row] for row in keep]).unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
        self.positions = self.positions + 1
        self.logits = self.engine.forward(tokens, self.mask, self.positions, self.cache)
        return out

    def _remember(self, row: int) -> None:
        """Put a leaving sequence's keys and values (prompt and the tokens fed so far) in the prefix cache."""
        valid = self.mask[row].nonzero().squeeze(1)  # the prompt may have a gap after its cached prefix
        seq = self.sequences[row]
        ids = (seq.request.prompt_ids + seq.ids)[: len(valid)]
        kv = [
            (layer.keys[row : row + 1, :, valid], layer.values[row : row + 1, :, valid]) for layer in self.cache.layers
        ]
        self.engine.prefix_cache.put(ids, kv)

    def _keep(self, rows: list[int]) -> list[int]:
        """Keep ``rows`` (ascending) and return their new order: a leaving row among the first
        len(rows) is refilled by a kept row from beyond them, so only those rows are copied."""
        if not rows:
            self._reset()
            return []
        count, kept = len(rows), set(rows)
        targets = [row for row in range(count) if row not in kept]
        sources = [row for row in rows if row >= count]
        order = list(range(count))
        for target, source in zip(targets, sources):
            order[target] = source
        start = int(self.mask[order].any(dim=0).nonzero()[0])  # columns that are padding in every row go
        for layer in self.cache.layers:
            layer.keep_rows(targets, sources, count, drop_columns=start)
        self.mask, self.positions = self.mask[order, start:], self.positions[order]
        self.sequences = [self.sequences[row] for row in order]
        self.keys = [self.keys[row] for row in order]
        return order


_SPARE_COLUMNS = 128  # room for this many decode steps before a cache layer is copied into a larger buffer


class _GrowingLayer(DynamicLayer):
    """A KV-cache layer whose keys and values are views of larger buffers: a decode step writes one
    column into spare room, a leaving row is refilled by one from the end, and padding columns are
    dropped by moving a start index, so none of them copies the cache.

    transformers (checked on 5.25) exports ``DynamicLayer`` and ``Cache`` but no API for a layer with
    preallocated room: this overrides ``update`` and relies on its ``keys``/``values`` attributes and
    ``lazy_initialization``; the `hf` engine tests fail first if an upgrade changes them."""

    @classmethod
    def holding(cls, key_buffer: torch.Tensor, value_buffer: torch.Tensor, width: int) -> _GrowingLayer:
        layer = cls()
        layer.lazy_initialization(key_buffer, value_buffer)
        layer.key_buffer, layer.value_buffer = key_buffer, value_buffer
        layer._view(len(key_buffer), 0, width)
        return layer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        rows, length, added = self.keys.shape[0], self.keys.shape[2], key_states.shape[2]
        if self.start + length + added > self.key_buffer.shape[2]:  # out of room: copy once into a larger buffer
            self.key_buffer = _stack_right([self.keys], length, spare=added + _SPARE_COLUMNS)
            self.value_buffer = _stack_right([self.values], length, spare=added + _SPARE_COLUMNS)
            self.start = 0
        end = self.start + length
        self.key_buffer[:rows, :, end : end + added] = key_states
        self.value_buffer[:rows, :, end : end + added] = value_states
        self._view(rows, self.start, end + added)
        return self.keys, self.values

    def keep_rows(self, targets: list[int], sources: list[int], count: int, drop_columns: int = 0) -> None:
        """Copy row ``sources[i]`` to ``targets[i]``, keep the first ``count`` rows, drop leading columns."""
        start, end = self.start + drop_columns, self.start + self.keys.shape[2]
        if targets:
            for buffer in (self.key_buffer, self.value_buffer):
                buffer[targets, :, start:end] = buffer[sources, :, start:end]
        self._view(count, start, end)

    def _view(self, rows: int, start: int, end: int) -> None:
        self.start = start
        self.keys, self.values = self.key_buffer[:rows, :, start:end], self.value_buffer[:rows, :, start:end]


def _stack_right(tensors: list[torch.Tensor], width: int, spare: int = 0) -> torch.Tensor:
    """``tensors`` concatenated along dim 0, each right-aligned in ``width`` columns of its sequence
    axis (dim 1 of a mask, dim 2 of keys or values) with zeros on the left, plus ``spare`` columns."""
    dim = 1 if tensors[0].dim() == 2 else 2
    shape = list(tensors[0].shape)
    shape[0], shape[dim] = sum(len(t) for t in tensors), width + spare
    out = tensors[0].new_zeros(shape)
    row = 0
    for t in tensors:
        out[row : row + len(t)].narrow(dim, width - t.shape[dim], t.shape[dim]).copy_(t)
        row += len(t)
    return out
