"""Cost of exact SID-trie constraints in decoding.

Part 1: one decoding step of the trie (child_runs, runs_mask, follow) for 512 beams over 1M
items with level sizes 4096-1024-512-256-256, jitted, timed after warm-up, per level.
Part 2: full beam search with a cheap synthetic logits_fn (low-rank bigram scorer over the whole
vocabulary), constrained vs unconstrained, batch 1 / 64 x beams 16 / 128, over 100k items.

  python -m benchmarks.trie_bench                       # full run (CPU: a few minutes)
  python -m benchmarks.trie_bench --items=100000 --mask_beams=128 --quick
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.decode.beam_search import beam_search
from onesearch_jax.sid import trie as trie_lib
from onesearch_jax.sid.trie import SidTrie

LEVEL_SIZES = (4096, 1024, 512, 256, 256)
TEXT_VOCAB = 100


def make_codes(num_items: int, kind: str, seed: int = 0) -> np.ndarray:
    """Random (uniform per level) or clustered (Zipf first level, few children per parent) SIDs."""
    rng = np.random.default_rng(seed)
    if kind == "random":
        return np.stack([rng.integers(0, s, num_items) for s in LEVEL_SIZES], axis=1)
    if kind != "clustered":
        raise ValueError(f"kind must be 'random' or 'clustered', got {kind!r}")
    first = np.minimum(rng.zipf(1.3, num_items) - 1, LEVEL_SIZES[0] - 1)
    cols, parent = [first], first.astype(np.int64)
    for size, fanout in zip(LEVEL_SIZES[1:], (64, 16, 32, 64)):
        # each parent uses only `fanout` codes of its level, picked by a hash of the parent id
        slot = rng.integers(0, fanout, num_items)
        code = (parent * 2654435761 + slot * 40503) % size
        cols.append(code)
        parent = parent * size + code
    return np.stack(cols, axis=1)


def timeit(fn, *args, repeats: int = 5) -> float:
    """Median seconds of fn(*args) after one warm-up (compile) call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


@functools.partial(jax.jit, static_argnums=3)
def trie_step(trie, state, codes, level):
    """What a decoding step does with the trie: the rows' child runs, the mask from them, and
    the next nodes read off them."""
    runs = trie_lib.child_runs(trie, state, level)
    return trie_lib.runs_mask(runs), trie_lib.follow(runs, codes)


def bench_mask(num_items: int, beams: int, kind: str) -> dict:
    codes = make_codes(num_items, kind)
    t = time.perf_counter()
    trie = SidTrie.build(codes, LEVEL_SIZES)
    build_s = time.perf_counter() - t
    nbytes = sum(x.nbytes for x in jax.tree_util.tree_leaves(trie))
    rng = np.random.default_rng(1)
    path = jnp.asarray(codes[rng.integers(0, num_items, beams)], dtype=jnp.int32)  # real prefixes
    state = trie_lib.root_state(trie, beams)
    per_level = []
    for level in range(len(LEVEL_SIZES)):
        per_level.append(timeit(trie_step, trie, state, path[:, level], level))
        state = trie_lib.advance(trie, state, path[:, level], level)
    assert bool(jnp.all(state >= 0))
    return {
        "kind": kind,
        "items": num_items,
        "unique_sids": trie.num_sids,
        "beams": beams,
        "build_s": round(build_s, 2),
        "trie_mb": round(nbytes / 2**20, 1),
        "max_children": trie.max_children,
        "step_ms_per_level": [round(1e3 * s, 3) for s in per_level],
        "step_ms_mean": round(1e3 * float(np.mean(per_level)), 3),
    }


def synthetic_model(dim: int = 32, seed: int = 0):
    """Cheap logits_fn: logits = (query_vec + E[last token]) @ W over the full vocabulary."""
    vocab = TEXT_VOCAB + sum(LEVEL_SIZES)
    k1, k2 = jax.random.split(jax.random.key(seed))
    emb = jax.random.normal(k1, (vocab, dim)) / np.sqrt(dim)
    out = jax.random.normal(k2, (dim, vocab))

    def logits_fn(state, tokens, step):
        del step
        return (state + emb[tokens[:, -1]]) @ out, state

    return logits_fn


def bench_beam(num_items: int, batch: int, beams: int, trie, logits_fn, repeats: int) -> dict:
    offsets = tuple(TEXT_VOCAB + int(x) for x in np.cumsum((0,) + LEVEL_SIZES[:-1]))
    queries = jax.random.normal(jax.random.key(batch), (batch, 32))
    row = {"items": num_items, "batch": batch, "beams": beams}
    for name, constrained in (("unconstrained", False), ("constrained", True)):

        @jax.jit
        def run(trie, queries):
            return beam_search(
                logits_fn,
                queries,
                batch_size=batch,
                beam_size=beams,
                bos_id=0,
                level_offsets=offsets,
                level_sizes=LEVEL_SIZES,
                trie=trie,
                constrained=constrained,
            )

        row[f"{name}_ms"] = round(1e3 * timeit(run, trie, queries, repeats=repeats), 2)
        row[f"{name}_valid_rate"] = round(float(jnp.mean(run(trie, queries).valid)), 4)
    row["overhead"] = round(row["constrained_ms"] / row["unconstrained_ms"], 2)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--mask_beams", type=int, default=512)
    parser.add_argument("--beam_items", type=int, default=100_000)
    parser.add_argument("--kinds", default="random,clustered")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip batch 64")
    args = parser.parse_args()
    print(json.dumps({"backend": jax.default_backend(), "devices": str(jax.devices()[0])}))
    for kind in args.kinds.split(","):
        print(json.dumps(bench_mask(args.items, args.mask_beams, kind)), flush=True)
    trie = SidTrie.build(make_codes(args.beam_items, "clustered"), LEVEL_SIZES)
    logits_fn = synthetic_model()
    for batch in (1,) if args.quick else (1, 64):
        for beams in (16, 128):
            print(
                json.dumps(
                    bench_beam(
                        args.beam_items,
                        batch,
                        beams,
                        trie,
                        logits_fn,
                        repeats=2 if args.quick else 3,
                    )
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
