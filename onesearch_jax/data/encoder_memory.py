"""Encoder rows of our tokenizer -> the `frozen_minilm` encoder's input: memory tokens + states.

Every encoder input the task builder writes is a row of our BPE tokens: special tokens ([Q],
[KW], [USR], task tokens), SID tokens, and runs of text tokens (a query, a title, a keyword list,
a profile). Each maximal run of text tokens is decoded back to its text and replaced by that
text's frozen MiniLM states, one memory slot per word piece ([CLS] and [SEP] included), each
slot's token TEXT_SLOT_ID; every other token keeps one slot with a zero state. So

    [Q] red drill [KW] drill, cordless [HIST] <sid> <sid>
 -> [Q] <states of "red drill"> [KW] <states of "drill, cordless"> [HIST] <sid> <sid>

The trainable part of the model (state projection, adapter layers, decoder) reads both. The
states come from a `StateCache` (training: every text encoded once, before the first step) or
from MiniLM itself (serving a new query), so the cache only makes training fast. A memory row
longer than `mem_len` is cut at `mem_len` and counted in `truncated_rows`, never dropped.

A batch may be narrower than `mem_len` (`memory(rows, width)`): with `data.mem_width='stage'`
each training stage's batches are as wide as the longest row its tasks hold (`stage_widths`),
so the item and co-occurrence stages, whose rows fill less than half of the 80 slots, do not pay
for padding (one compiled shape per stage; the slots a row leaves empty are masked either way).
"""
from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping

import numpy as np
from tokenizers import Tokenizer

from onesearch_jax import fileio
from onesearch_jax.data.text_tokenizer import MASK_ID, PAD_ID

TEXT_SLOT_ID = MASK_ID  # the token of a memory slot holding a MiniLM state ([MASK] is never input)
ENC_KEYS = ("enc_tokens", "teacher_enc_tokens")  # batch keys that get states (+ "_states" twin)
MEM_WIDTHS = ("fixed", "stage")  # data.mem_width: every batch mem_len wide, or its stage's width
WIDTH_MULTIPLE = 8  # a stage's width is rounded up to this


def states_key(tokens_key: str) -> str:
    return tokens_key.replace("_tokens", "_states")


class EncoderMemory:
    """`memory(rows)` -> (int32 [B, mem_len] tokens, float32 [B, mem_len, 384] states).

    `states` maps a text to float32 [pieces, 384]: a `StateCache` (its `get`) for training, or a
    `LiveStates` for serving; `texts(rows)` lists the texts a set of rows needs."""

    def __init__(self, tokenizer: Tokenizer, states, mem_len: int, state_dim: int = 384):
        self.states, self.mem_len, self.state_dim = states, int(mem_len), int(state_dim)
        self._tokenizer = tokenizer
        specials = set(tokenizer.get_added_tokens_decoder()) | {PAD_ID}
        self._is_text = np.ones(tokenizer.get_vocab_size(), bool)
        self._is_text[sorted(specials)] = False
        self._span_text: dict[bytes, str] = {}
        self.truncated_rows = 0

    def _text_of(self, span: np.ndarray) -> str:
        key = span.tobytes()
        text = self._span_text.get(key)
        if text is None:
            text = self._tokenizer.decode(span.tolist(), skip_special_tokens=False).strip()
            self._span_text[key] = text
        return text

    def _pieces(self, row: np.ndarray) -> list:
        """A row as a list of int (a token kept as is) or str (a text span)."""
        row = row[row != PAD_ID]
        text = np.zeros(len(row), bool)
        inside = row < len(self._is_text)
        text[inside] = self._is_text[row[inside]]
        out, i, n = [], 0, len(row)
        while i < n:
            if text[i]:
                j = i + 1
                while j < n and text[j]:
                    j += 1
                out.append(self._text_of(row[i:j]))
                i = j
            else:
                out.append(int(row[i]))
                i += 1
        return out

    def texts(self, rows: np.ndarray) -> set[str]:
        """Every text span of the rows (what a cache must hold before `memory` is called)."""
        rows = np.unique(np.asarray(rows), axis=0) if len(rows) else np.asarray(rows)
        return {p for r in rows for p in self._pieces(r) if isinstance(p, str)}

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        """int [N]: the memory slots each row fills before any cut (a row longer than mem_len
        is cut to it)."""
        rows = np.asarray(rows)
        if not len(rows):
            return np.zeros(0, np.int64)
        unique, inverse = np.unique(rows, axis=0, return_inverse=True)
        slots = np.array([sum(len(self.states(p)) if isinstance(p, str) else 1
                              for p in self._pieces(row)) for row in unique], np.int64)
        return slots[inverse.reshape(-1)]

    def memory(self, rows: np.ndarray, width: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """`width` (default mem_len, at most mem_len): the slots of this batch; a longer row is
        cut at `width` and counted in `truncated_rows`."""
        rows = np.asarray(rows)
        if rows.ndim != 2:
            raise ValueError(f"encoder rows must be [batch, length], got shape {rows.shape}")
        width = self.mem_len if width is None else int(width)
        if not 1 <= width <= self.mem_len:
            raise ValueError(f"memory width {width} outside [1, mem_len={self.mem_len}]")
        tokens = np.zeros((len(rows), width), np.int32)
        states = np.zeros((len(rows), width, self.state_dim), np.float32)
        pieces = [self._pieces(row) for row in rows]
        prefetch = getattr(self.states, "prefetch", None)
        if prefetch is not None:  # live MiniLM: one batched call for the new texts
            prefetch({p for ps in pieces for p in ps if isinstance(p, str)})
        for b, row_pieces in enumerate(pieces):
            t = 0
            for piece in row_pieces:
                if t >= width:
                    t += 1  # something is left over: the row is cut
                    break
                if isinstance(piece, str):
                    s = self.states(piece)
                    n = min(len(s), width - t)
                    states[b, t:t + n] = s[:n]
                    tokens[b, t:t + n] = TEXT_SLOT_ID
                    t += len(s)
                else:
                    tokens[b, t] = piece
                    t += 1
            if t > width:
                self.truncated_rows += 1
        return tokens, states

    def attach(self, batch: Mapping[str, np.ndarray], width: int | None = None
               ) -> dict[str, np.ndarray]:
        """A batch whose encoder rows (ENC_KEYS) are replaced by memory tokens (`width` slots,
        default mem_len), with their states under the `_states` twin key."""
        out = dict(batch)
        for key in ENC_KEYS:
            if key in out:
                out[key], out[states_key(key)] = self.memory(out[key], width)
        return out


class LiveStates:
    """text -> states from a `StateCache` when it holds the text, else MiniLM now (kept in a
    bounded in-memory table): serving never needs the cache to be correct."""

    def __init__(self, encoder, cache=None, max_kept: int = 100_000):
        self.encoder, self.cache, self.max_kept = encoder, cache, int(max_kept)
        self._kept: dict[str, np.ndarray] = {}

    def prefetch(self, texts: Iterable[str]) -> None:
        """Encodes in one batched call the texts neither the cache nor the table holds."""
        new = sorted({t for t in texts if t not in self._kept
                      and (self.cache is None or t not in self.cache)})
        if not new:
            return
        if len(self._kept) + len(new) > self.max_kept:
            self._kept.clear()
        self._kept.update(zip(new, self.encoder.encode(new)))

    def __call__(self, text: str) -> np.ndarray:
        if self.cache is not None and text in self.cache:
            return self.cache.get(text)
        if text not in self._kept:
            self.prefetch([text])
        return self._kept[text]


LOCAL_CACHE = os.path.join("~", ".cache", "onesearch_jax")  # for workdirs in a bucket


def state_cache_folder(config, workdir: str) -> str:
    """`config.data.state_cache` (one folder several workdirs share), else W/minilm_states (a
    local folder when W is in a bucket: the cache is memory-mapped)."""
    folder = config.data.get("state_cache", "") if "data" in config else ""
    if folder and fileio.is_remote(folder):
        raise ValueError(f"data.state_cache={folder!r}: the MiniLM state cache is memory-mapped "
                         f"and must be a local folder")
    if not folder and fileio.is_remote(workdir):
        return os.path.expanduser(LOCAL_CACHE)
    return folder or os.path.join(workdir, "minilm_states")


def for_config(config, tokenizer: Tokenizer, workdir: str) -> EncoderMemory | None:
    """The EncoderMemory a `frozen_minilm` model reads through (None for other encoders):
    states from the cache folder, MiniLM itself for texts the cache lacks."""
    if config.model.get("encoder", "scratch") != "frozen_minilm":
        return None
    from onesearch_jax.data.minilm_states import MiniLMStates
    from onesearch_jax.data.state_cache import StateCache

    encoder = MiniLMStates(max_len=int(config.data.get("state_max_len", 32)))
    cache = StateCache(state_cache_folder(config, workdir), encoder)
    mem_len = int(config.data.get("mem_len", 0) or config.data.enc_len)
    return EncoderMemory(tokenizer, LiveStates(encoder, cache), mem_len)


def fill_cache(memory: EncoderMemory, row_sets: Iterable[np.ndarray]) -> dict[str, float]:
    """Encodes into the memory's cache every text the rows need (once: a rerun encodes nothing);
    returns what it found and how long encoding took."""
    cache = memory.states.cache
    texts: set[str] = set()
    for rows in row_sets:
        texts |= memory.texts(rows)
    before = cache.encode_seconds
    encoded = cache.ensure(sorted(texts))
    return {"state_cache/texts": float(len(texts)), "state_cache/encoded": float(encoded),
            "state_cache/encode_s": cache.encode_seconds - before,
            "state_cache/truncated_texts": float(memory.states.encoder.truncated)}


def check_mem_width(config) -> str:
    """config.data.mem_width ('fixed' when absent), refused by name when unknown."""
    mode = config.data.get("mem_width", "fixed")
    if mode not in MEM_WIDTHS:
        raise ValueError(f"data.mem_width={mode!r}; valid: {MEM_WIDTHS}")
    return mode


def stage_widths(memory: EncoderMemory, batches, multiple: int = WIDTH_MULTIPLE
                 ) -> dict[str, int]:
    """Stage name -> the slots its batches need: the longest encoder row (and teacher row, when
    the batches carry them) of the tasks it samples, rounded up to `multiple`, at most mem_len.
    Every process computes the same widths from the same tasks, so the global batch agrees."""
    task_longest: dict[str, int] = {}  # a task sampled by several stages is measured once

    def longest_row(name: str) -> int:
        if name not in task_longest:
            task = batches.tasks[name]
            rows = [task.enc]
            if batches.with_teacher and task.teacher_enc is not None:
                rows.append(task.teacher_enc)
            task_longest[name] = max(int(memory.lengths(r).max()) for r in rows)
        return task_longest[name]

    out = {}
    for stage in batches.stages:
        longest = max([1] + [longest_row(name) for name, weight in stage.mixture.items()
                             if weight > 0 and len(batches.tasks.get(name, ()))])
        out[stage.name] = min(memory.mem_len, -(-longest // multiple) * multiple)
    return out


def with_states(batches, memory: EncoderMemory,
                width_at: Callable[[int], int] | None = None):
    """A loop batch factory `(position, rows) -> iterator` whose batches carry MiniLM states;
    `width_at(step)` (default: mem_len always) is batch number `step`'s memory width."""
    def factory(position, rows=None):
        for step, batch in enumerate(batches(position, rows), start=int(position)):
            yield memory.attach(batch, None if width_at is None else width_at(step))
    return factory
