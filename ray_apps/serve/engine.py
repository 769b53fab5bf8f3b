"""The `hf` engine: batched decoding with transformers, per-sequence sampling, streamed text deltas.

A :class:`DecodeBatch` holds the sequences being decoded together: requests join it between steps
(their prompts prefilled in one forward, their KV cache merged in), every step samples one token
for each sequence, and a sequence leaves as soon as it finishes. Each keeps its own sampling
settings (temperature, top-p, seed), stop strings and token budget, and yields :class:`Delta`
objects: the text that became final in that step.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

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


@dataclass
class _Sequence:
    """One sequence being decoded: its tokens, its text, how much of it was sent, and when it stops.

    Text is detokenized incrementally (a short window of tokens per step, as vLLM and TGI do), so a
    step costs the same at token 10 and token 1,000, and an incomplete UTF-8 character is never sent.
    """

    request: GenerationRequest
    tokenizer: object
    stop_ids: frozenset[int]
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


def _top_p(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero every token outside each row's nucleus (the smallest set whose mass reaches top_p)."""
    ordered, order = probs.sort(dim=-1, descending=True)
    outside = ordered.cumsum(dim=-1) - ordered > top_p.unsqueeze(1)  # the top token always stays
    return probs.scatter(-1, order, ordered.masked_fill(outside, 0.0))


def _sample(logits: torch.Tensor, sequences: list[_Sequence]) -> list[int]:
    """Next token of each row: greedy at temperature 0, else temperature + top-p sampling.

    Sampling is vectorised inverse-CDF sampling with one uniform number per row; a request with a
    seed draws its number from its own generator, so its text does not depend on what else shares
    the batch.
    """
    params = [s.request.params for s in sequences]
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
        if bool((top_p < 1).any()):
            probs = _top_p(probs, top_p)
        cdf = probs.cumsum(dim=-1)
        uniform = torch.rand(len(rows))
        for row, i in enumerate(rows):
            if sequences[i].generator is not None:
                uniform[row] = torch.rand((), generator=sequences[i].generator)
        uniform = uniform.to(logits.device)
        picked = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(1), right=True).clamp(max=cdf.shape[1] - 1)
        for i, token in zip(rows, picked.squeeze(1).tolist()):
            tokens[i] = token
    return tokens


class PrefixCache:
    """Keys and values of finished sequences, so a prompt that extends one (the next turn of a session,
    which resends the whole history) prefills only its new tokens. Least recently used entries go
    first once ``max_bytes`` is reached."""

    def __init__(self, max_bytes: int, min_tokens: int = 16):
        self.max_bytes, self.min_tokens = max_bytes, min_tokens
        self.entries: OrderedDict[int, tuple[np.ndarray, list, int]] = OrderedDict()  # id -> (token ids, kv, bytes)
        self.by_start: dict[tuple[int, ...], set[int]] = {}  # first min_tokens ids -> entry ids
        self.bytes, self.next_id, self.hits, self.reused_tokens = 0, 0, 0, 0

    def put(self, ids: list[int], kv: list) -> None:
        size = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
        if len(ids) < self.min_tokens or size > self.max_bytes:
            return
        entry, self.next_id = self.next_id, self.next_id + 1
        self.entries[entry] = (np.asarray(ids), kv, size)
        self.by_start.setdefault(tuple(ids[: self.min_tokens]), set()).add(entry)
        self.bytes += size
        while self.bytes > self.max_bytes:
            old, (old_ids, _, old_size) = self.entries.popitem(last=False)
            self.by_start[tuple(old_ids[: self.min_tokens].tolist())].discard(old)
            self.bytes -= old_size

    def match(self, prompt: list[int]) -> tuple[int, list] | None:
        """(tokens reused, their keys and values) for the entry sharing the longest prefix with ``prompt``."""
        best, best_length = None, 0
        target = np.asarray(prompt)
        for entry in self.by_start.get(tuple(prompt[: self.min_tokens]), ()):
            ids = self.entries[entry][0]
            n = min(len(ids), len(prompt) - 1)  # at least one prompt token is left to compute the next logits
            differ = np.flatnonzero(ids[:n] != target[:n])
            length = int(differ[0]) if len(differ) else n
            if length > best_length:
                best, best_length = entry, length
        if best is None or best_length < self.min_tokens:
            return None
        self.entries.move_to_end(best)
        self.hits += 1
        self.reused_tokens += best_length
        return best_length, [(k[:, :, :best_length], v[:, :, :best_length]) for k, v in self.entries[best][1]]


class HFEngine:
    """A causal LM from a local directory or hub id; decodes through :class:`DecodeBatch`."""

    def __init__(self, path: str, *, dtype: str = "auto", device: str | None = None, token_env: str = "HF_TOKEN",
                 prefix_cache_mb: float = 0):  # fmt: skip
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

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Cache) -> torch.Tensor:
        """Logits of the last position of each row (float, on the model's device); ``cache`` grows by ``ids``."""
        with torch.inference_mode():
            out = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=positions.to(self.device),
                past_key_values=cache, use_cache=True, logits_to_keep=1,
            )  # fmt: skip
        return out.logits[:, -1, :].float()


class DecodeBatch:
    """The sequences decoded together. Continuous batching: requests join between steps, and a
    finished sequence leaves at once, so the batch stays full while callers come and go.

    Rows are left-padded so every sequence's last token sits in the last column; the attention
    mask hides the padding and each row carries its own positions.
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
        prefix cache (a session's next turn) prefills only its new tokens; the rest share one forward."""
        fresh = []
        for request, key in zip(requests, keys):
            hit = self.engine.prefix_cache.match(request.prompt_ids) if self.engine.prefix_cache else None
            if hit:
                self._prefill_after(request, key, *hit)
            else:
                fresh.append((request, key))
        if not fresh:
            return
        longest = max(len(r.prompt_ids) for r, _ in fresh)
        ids = torch.full((len(fresh), longest), self.engine.pad_id, dtype=torch.long)
        mask = torch.zeros((len(fresh), longest), dtype=torch.long)
        for row, (r, _) in enumerate(fresh):
            ids[row, longest - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[row, longest - len(r.prompt_ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = Cache(layer_class_to_replicate=_GrowingLayer)
        logits = self.engine.forward(ids, mask, positions, cache)
        self._merge(cache, mask, positions[:, -1:], logits, [r for r, _ in fresh], [k for _, k in fresh])

    def _prefill_after(self, request: GenerationRequest, key: object, cached: int, kv: list) -> None:
        """Prefill one prompt whose first ``cached`` tokens' keys and values are ``kv``."""
        cache = Cache(layer_class_to_replicate=_GrowingLayer)
        for layer, (k, v) in enumerate(kv):
            cache.update(k.clone(), v.clone(), layer)
        suffix = torch.tensor([request.prompt_ids[cached:]])
        mask = torch.ones((1, len(request.prompt_ids)), dtype=torch.long)
        positions = torch.arange(cached, len(request.prompt_ids)).unsqueeze(0)
        logits = self.engine.forward(suffix, mask, positions, cache)
        self._merge(cache, mask, positions[:, -1:], logits, [request], [key])

    def _merge(self, cache: Cache, mask: torch.Tensor, positions: torch.Tensor, logits: torch.Tensor, requests: list, keys: list) -> None:
        if self.cache is None:
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            for old_layer, new_layer in zip(self.cache.layers, cache.layers):
                old_layer.keys = torch.cat([_left_pad(old_layer.keys, width, 2), _left_pad(new_layer.keys, width, 2)])
                old_layer.values = torch.cat([_left_pad(old_layer.values, width, 2), _left_pad(new_layer.values, width, 2)])
            self.mask = torch.cat([_left_pad(self.mask, width, 1), _left_pad(mask, width, 1)])
            self.positions = torch.cat([self.positions, positions])
            self.logits = torch.cat([self.logits, logits])
        self.sequences += [_Sequence(r, self.engine.tokenizer, self.engine.stop_ids) for r in requests]
        self.keys += list(keys)

    def step(self, cancelled: Collection[object] = ()) -> list[tuple[object, Delta]]:
        """Sample one token for every sequence; returns (key, delta) pairs. Finished and cancelled
        sequences leave the batch; the rest advance one position."""
        if not self.sequences:
            return []
        tokens = _sample(self.logits, self.sequences)
        out, keep = [], []
        for row, (seq, key, token) in enumerate(zip(self.sequences, self.keys, tokens)):
            delta = seq.push(token)
            out.append((key, delta))
            if delta.finish_reason is None and key not in cancelled:
                keep.append(row)
        if len(keep) < len(self.sequences):
            if self.engine.prefix_cache:
                for row in sorted(set(range(len(self.sequences))) - set(keep)):
                    self._remember(row)
            self._keep(keep)
        if not self.sequences:
            return out
        tokens = torch.tensor([tokens[row] for row in keep]).unsqueeze(1)
        self.mask = torch.cat([self.mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
        self.positions = self.positions + 1
        self.logits = self.engine.forward(tokens, self.mask, self.positions, self.cache)
        return out

    def _remember(self, row: int) -> None:
        """Put a leaving sequence's keys and values (prompt and the tokens fed so far) in the prefix cache."""
        length = int(self.mask[row].sum())
        seq = self.sequences[row]
        ids = (seq.request.prompt_ids + seq.ids)[:length]
        kv = [(layer.keys[row : row + 1, :, -length:].clone(), layer.values[row : row + 1, :, -length:].clone()) for layer in self.cache.layers]
        self.engine.prefix_cache.put(ids, kv)

    def _keep(self, rows: list[int]) -> None:
        if not rows:
            self._reset()
            return
        index = torch.tensor(rows)
        self.cache.batch_select_indices(index.to(self.engine.device))
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.sequences = [self.sequences[r] for r in rows]
        self.keys = [self.keys[r] for r in rows]
        start = int(self.mask.any(dim=0).nonzero()[0])  # drop columns that are padding in every row
        if start:
            self.mask = self.mask[:, start:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]


class _GrowingLayer(DynamicLayer):
    """A KV-cache layer that appends into spare capacity, so a decode step copies one token, not the cache."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized or self.keys.numel() == 0:
            return super().update(key_states, value_states)
        self.keys, self.key_buffer = _append(self.keys, getattr(self, "key_buffer", None), key_states)
        self.values, self.value_buffer = _append(self.values, getattr(self, "value_buffer", None), value_states)
        return self.keys, self.values


def _append(valid: torch.Tensor, buffer: torch.Tensor | None, new: torch.Tensor, grow: int = 128):
    """``valid`` + ``new`` along the sequence axis, written into ``buffer`` when ``valid`` is its head."""
    length, added = valid.shape[-2], new.shape[-2]
    fits = (
        buffer is not None and valid.data_ptr() == buffer.data_ptr() and valid.stride() == buffer.stride()
        and buffer.shape[:2] == valid.shape[:2] and length + added <= buffer.shape[-2]
    )  # fmt: skip
    if not fits:  # the batch changed shape (or ran out of room): copy once into a larger buffer
        buffer = valid.new_empty((*valid.shape[:2], length + added + grow, valid.shape[-1]))
        buffer[:, :, :length] = valid
    buffer[:, :, length : length + added] = new
    return buffer[:, :, : length + added], buffer


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if not missing:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
