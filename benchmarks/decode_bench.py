"""Decoding speed of SID beam search: ours (JAX, jitted) vs a PyTorch / HF transformers peer.

Issue "OneSearch V1 baseline": 100k items with 5-token SIDs (clustered random codes, level sizes
256-64-32-64-64), the same ~9.6M-parameter encoder-decoder on both sides (d=256, 4+4 layers,
4 heads, mlp 1024, vocab 8192 text + 480 SID tokens), random init (speed only), encoder input
length 32, CPU. Per setting (batch 1 / 64 x beams 16 / 128), ms per query = wall / batch:

* ours-constrained: one ``jax.jit`` of encode + ``beam_search`` masked by the ``SidTrie``, with
  the model's KV-cached decoder (``make_cached_logits_fn``: one new token per step, the
  self-attention cache in the beam state, cross-attention K/V once per query, logits over the
  current level's tokens only) -- the serving path of ``SidRetriever``;
* ours-free: the same with ``trie=None``;
* peer: ``BartForConditionalGeneration.generate(num_beams=B, num_return_sequences=B,
  max_new_tokens=5, min_new_tokens=5, prefix_allowed_tokens_fn=...)`` whose fn walks a nested
  Python dict of the 100k SIDs (vocabulary-token space) per beam; peer-free: without the fn.
  torch.no_grad, eval mode, torch.set_num_threads(--threads, default 2); on a machine with CUDA
  the peer runs on the GPU, like ours. On a 2-core machine
  shared with other jobs, 2 OpenMP threads stall on each other (b1 x k16 peer-free measured at
  0.4-3.6 s instead of ~0.1 s with 1 thread, load average ~7); --threads=1 is then the fair peer.
* ``--serving`` adds the serving path of a query, SIDs *and* items: ours-serve-walk (the
  path before the fix: the beams' codes copied to the host, then per query the trie's item
  tables copied off the device and its codes walked again, ``SidTrie.sid_items``) and
  ours-serve-leaves (the search returns each beam's trie leaf id from inside the jit; one host
  copy of the leaf -> items table, ``LeafItems``, reused by every query), and this CPU's floor
  for the same model at batch 1: the compiled search's FLOPs / the measured f32 matmul
  throughput, and the weight bytes one query reads (encoder once, decoder layers + the level's
  output rows once per SID level) / the measured memory bandwidth.
* ``--uncached`` adds ours-uncached(-free): the full-prefix decoder (``make_logits_fn``, the
  whole prefix re-decoded each step over the full vocabulary), the path before the cache.
  Before timing, the cached decoder is checked against it (codes equal, scores within 1e-3).

Every setting is warmed up once (first call: compile), then timed in ``--repeats`` rounds
(median), each round calling every system once so that load from other jobs hits all alike.
For batch*beams >= 4096 (batch 64 x beams 128) a full call costs minutes on 2 cores, so the
warm-up is the ahead-of-time compile for ours and a one-query call of the same beams for the
peer, and ``--big_repeats`` rounds are timed.

  pip install torch==2.13.0 && pip install transformers   # the `bench` extra
  python -m benchmarks.decode_bench --uncached --threads=1 --repeats=3 --big_repeats=1 \
      --out=/tmp/decode_bench.json                          # ~13 min on 2 loaded cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from onesearch_jax.decode.beam_search import beam_search
from onesearch_jax.train import step_hlo
from onesearch_jax.model.presets import TransformerConfig, param_count
from onesearch_jax.model.transformer import (
    EncoderDecoder,
    build_model,
    make_cached_logits_fn,
    make_logits_fn,
)
from onesearch_jax.decode.retrieve import items_from_beams
from onesearch_jax.sid.trie import LeafItems, SidTrie
from onesearch_jax.sid.vocab import SidVocab

LEVEL_SIZES = (256, 64, 32, 64, 64)
TEXT_VOCAB = 8192
ENC_LEN = 32
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
SETTINGS = ((1, 16), (1, 128), (64, 16), (64, 128))


# ---------------------------------------------------------------------------------- the setup
def make_codes(num_items: int, seed: int = 0) -> np.ndarray:
    """Clustered SIDs: Zipf-like first level over all codes, each parent uses a few children."""
    rng = np.random.default_rng(seed)
    p = 1.0 / (np.arange(LEVEL_SIZES[0]) + 5.0) ** 1.1
    first = rng.choice(LEVEL_SIZES[0], size=num_items, p=p / p.sum())
    cols, parent = [first], first.astype(np.int64)
    for size, fanout in zip(LEVEL_SIZES[1:], (16, 8, 64, 64)):
        slot = rng.integers(0, fanout, num_items)  # parent's own subset of `fanout` codes
        code = (
            (parent * 2654435761 + slot * (2 * (size // fanout) + 1)) % size
            if fanout < size
            else slot
        )
        cols.append(code)
        parent = parent * size + code
    return np.stack(cols, axis=1).astype(np.int32)


def model_config(vocab_size: int) -> TransformerConfig:
    return TransformerConfig(
        vocab_size=vocab_size,
        d_model=256,
        num_heads=4,
        mlp_dim=1024,
        enc_layers=4,
        dec_layers=4,
        max_enc_len=ENC_LEN,
        max_dec_len=8,
        dropout_rate=0.0,
    )


def queries(batch: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    return rng.integers(3, TEXT_VOCAB, size=(batch, ENC_LEN)).astype(np.int32)


# ------------------------------------------------------------------------------------- ours
def make_search(model: EncoderDecoder, vocab: SidVocab, beam_size: int, cached: bool):
    """jit(params, trie or None, enc_tokens [B, S]) -> BeamResult: encode + beam search, with the
    model's KV-cached decoder (the serving path, as in SidRetriever) or the full-prefix one."""

    def search(params, trie, enc_tokens):
        enc_out, enc_mask = model.apply(
            {"params": params}, enc_tokens, method=EncoderDecoder.encode
        )
        if cached:
            ranges = zip(vocab.level_offsets, vocab.level_sizes)
            logits_fn, state = make_cached_logits_fn(model, params, enc_out, enc_mask, ranges)
        else:
            logits_fn, state = make_logits_fn(model, params), (enc_out, enc_mask)
        return beam_search(
            logits_fn,
            state,
            batch_size=enc_tokens.shape[0],
            beam_size=beam_size,
            bos_id=BOS_ID,
            level_offsets=vocab.level_offsets,
            level_sizes=vocab.level_sizes,
            trie=trie,
            constrained=trie is not None,
            level_logits=cached,
        )

    return jax.jit(search)


SERVE_K = 10  # items per query the serving runners list


def items_by_walking(trie: SidTrie, codes: np.ndarray, valid: np.ndarray, k: int):
    """The item lookup before the fix: per query, trie.sid_items (tables copied, codes walked)."""
    out = []
    for row_codes, row_valid in zip(codes, valid):
        items, good = [], row_codes[row_valid]
        for sid_items in trie.sid_items(good) if len(good) else []:
            items += [i for i in sid_items.tolist() if i not in items]
            if len(items) >= k:
                break
        out.append(items[:k])
    return out


def serving_runner(search, params, trie, enc: np.ndarray, leaves: bool):
    """Search + items for each query of `enc`, one query per call (batch-1 serving)."""
    table = LeafItems.from_trie(trie)

    def run():
        out = jax.device_get(search(params, trie, enc))
        if leaves:
            ranked = items_from_beams(table, out.leaves, SERVE_K)
        else:
            ranked = items_by_walking(trie, out.codes, out.valid, SERVE_K)
        return out.codes, out.valid, ranked

    return run


def cpu_peaks(n: int = 2048, mib: int = 512) -> dict:
    """This machine's f32 matmul FLOP/s (n x n @ n x n, best of 5) and memory bandwidth (read +
    write of a `mib` MiB array, best of 5), both through XLA like the model."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x, y: x @ y)
    x = jnp.ones((mib * 2**20 // 4,), jnp.float32)
    scale = jax.jit(lambda v: v * 1.0001)
    best_mm, best_bw = [], []
    jax.block_until_ready((mm(a, a), scale(x)))
    for _ in range(5):
        t = time.perf_counter()
        jax.block_until_ready(mm(a, a))
        best_mm.append(time.perf_counter() - t)
        t = time.perf_counter()
        jax.block_until_ready(scale(x))
        best_bw.append(time.perf_counter() - t)
    return {"matmul_gflops": 2 * n**3 / min(best_mm) / 1e9,
            "mem_gbps": 2 * x.size * 4 / min(best_bw) / 1e9}


def weight_bytes_per_query(params, vocab: SidVocab) -> int:
    """Weight bytes one query's search reads: the encoder once; per SID level the decoder layers
    and that level's output-embedding rows (the KV caches and activations are not counted)."""
    params = nn.unbox(params)
    size = lambda tree: sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(tree))
    enc = sum(size(v) for k, v in params.items() if k.startswith("enc"))
    dec = sum(size(v) for k, v in params.items() if k.startswith("dec"))
    row = params["embed"]["embedding"].shape[1] * params["embed"]["embedding"].dtype.itemsize
    return int(enc + len(vocab.level_sizes) * dec + sum(vocab.level_sizes) * row)


def compiled_flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def ours_runner(search, params, trie, enc: np.ndarray):
    def run():
        out = jax.device_get(search(params, trie, enc))
        return out.codes, out.valid

    return run


# ------------------------------------------------------------------------------------- peer
def build_peer(vocab_size: int, seed: int = 0):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(seed)
    cfg = BartConfig(
        vocab_size=vocab_size,
        d_model=256,
        encoder_layers=4,
        decoder_layers=4,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=1024,
        decoder_ffn_dim=1024,
        max_position_embeddings=64,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=BOS_ID,
        decoder_start_token_id=BOS_ID,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    model = BartForConditionalGeneration(cfg).eval()
    return model


def python_trie(sid_tokens: np.ndarray) -> dict:
    """Nested dicts token -> children over the SIDs in vocabulary-token space."""
    root: dict = {}
    for row in sid_tokens.tolist():
        node = root
        for t in row:
            node = node.setdefault(t, {})
    return root


def peer_runner(model, enc: np.ndarray, beams: int, trie_dict: dict | None):
    import torch

    def allowed(batch_id, sent):  # the usual PyTorch way: walk the prefix through a dict trie
        del batch_id
        node = trie_dict
        for t in sent.tolist()[1:]:  # skip decoder_start
            node = node.get(t)
            if node is None:
                return [EOS_ID]  # dead prefix (only reachable through a -inf beam)
        return list(node)

    ids = torch.from_numpy(enc.astype(np.int64)).to(next(model.parameters()).device)

    def run():
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=ids != PAD_ID,
                num_beams=beams,
                num_return_sequences=beams,
                max_new_tokens=5,
                min_new_tokens=5,
                do_sample=False,
                early_stopping=False,
                length_penalty=1.0,
                no_repeat_ngram_size=0,
                prefix_allowed_tokens_fn=allowed if trie_dict is not None else None,
            )
        return out[:, 1:].cpu().numpy()

    return run


# ------------------------------------------------------------------------------------ timing
def systems_for(uncached: bool):
    """(name, cached decoder?, constrained?) of our systems."""
    out = [("ours_constrained", True, True), ("ours_free", True, False)]
    if uncached:
        out += [("ours_uncached_constrained", False, True), ("ours_uncached_free", False, False)]
    return out


def timed_interleaved(runners: dict, repeats: int, warm_up: bool = True):
    """Median seconds per runner over `repeats` rounds; each round calls every runner once, so
    load from other jobs on a shared machine hits all systems alike. Returns (times, last outputs).
    """
    outs = {name: run() for name, run in runners.items()} if warm_up else {}
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            t = time.perf_counter()
            outs[name] = run()
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(ts)) for name, ts in times.items()}, outs


def check_cached(model, params, vocab, trie, enc):
    """The cached decoder must reproduce the full-prefix decoder's beams on this model."""
    for tr in (trie, None):
        ref = make_search(model, vocab, 16, cached=False)(params, tr, enc)
        new = make_search(model, vocab, 16, cached=True)(params, tr, enc)
        same = np.mean(np.asarray(ref.codes) == np.asarray(new.codes))
        err = float(np.max(np.abs(np.asarray(ref.scores) - np.asarray(new.scores))))
        if same < 0.99 or err > 1e-3:
            raise AssertionError(
                f"cached decoder disagrees: codes equal {same:.3f}, max |dscore| {err}"
            )
    return {"codes_equal_frac": float(same), "max_abs_score_diff": err}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--settings",
        default=",".join(f"{b}x{k}" for b, k in SETTINGS),
        help="batch x beams, comma separated",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--big_at",
        type=int,
        default=4096,
        help="batch*beams from which warm-up is compile-only / one-query",
    )
    parser.add_argument("--big_repeats", type=int, default=1, help="rounds for big settings")
    parser.add_argument(
        "--uncached",
        action="store_true",
        help="also time the full-prefix decoder (no KV cache; the path before the cache)",
    )
    parser.add_argument("--serving", action="store_true",
                        help="also time search + items (before/after the leaf-id fix) and the "
                             "CPU floor")
    parser.add_argument("--no_peer", action="store_true")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    vocab = SidVocab(TEXT_VOCAB, LEVEL_SIZES)
    codes = make_codes(args.items)
    trie = SidTrie.build(codes, LEVEL_SIZES)
    cfg = model_config(vocab.vocab_size)
    model = build_model(cfg)
    enc0 = queries(2, 0)
    params = jax.jit(model.init)(jax.random.key(0), enc0, enc0[:, :5])["params"]
    meta = {
        "backend": jax.default_backend(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "items": args.items,
        "unique_sids": trie.num_sids,
        "level_sizes": LEVEL_SIZES,
        "vocab_size": vocab.vocab_size,
        "enc_len": ENC_LEN,
        "ours_params": param_count(cfg),
        "load_avg_start": os.getloadavg(),
    }
    meta["cached_check"] = check_cached(model, params, vocab, trie, enc0)
    if args.serving:
        meta.update(cpu_peaks(), weight_mb_per_query=weight_bytes_per_query(params, vocab) / 1e6)
    if not args.no_peer:
        import torch
        import transformers

        torch.set_num_threads(args.threads)
        peer = build_peer(vocab.vocab_size)
        if torch.cuda.is_available():  # the peer on the same accelerator as ours
            peer = peer.cuda()
        trie_dict = python_trie(vocab.to_tokens(codes))
        meta.update(
            torch=torch.__version__,
            transformers=transformers.__version__,
            torch_threads=torch.get_num_threads(),
            peer_device=str(next(peer.parameters()).device),
            peer_params=sum(p.numel() for p in peer.parameters()),
        )
    print(json.dumps(meta), flush=True)
    sid_set = {tuple(r) for r in codes.tolist()}

    rows = []
    for setting in args.settings.split(","):
        batch, beams = (int(x) for x in setting.split("x"))
        big = batch * beams >= args.big_at
        repeats = args.big_repeats if big else args.repeats
        enc = queries(batch, batch * 1000 + beams)
        row = {"batch": batch, "beams": beams, "repeats": repeats, "full_call_warm_up": not big}
        runners = {}
        for name, cached, tr in systems_for(args.uncached):
            search = make_search(model, vocab, beams, cached)
            trie_arg = trie if tr else None
            # Ahead-of-time compile, timed calls go to the executable (for big settings the warm-up
            # is this compile alone: a full call costs minutes there).
            compiled = search.lower(params, trie_arg, enc).compile()
            row[f"{name}_ops"] = step_hlo.unfused_ops(compiled.as_text())
            runners[name] = ours_runner(compiled, params, trie_arg, enc)
            if args.serving and name == "ours_constrained":
                for serve, leaves in (("ours_serve_walk", False), ("ours_serve_leaves", True)):
                    runners[serve] = serving_runner(compiled, params, trie, enc, leaves)
                flops = compiled_flops(compiled)
                if flops is not None:
                    row["compute_floor_ms"] = 1e3 * flops / batch / (meta["matmul_gflops"] * 1e9)
                row["memory_floor_ms"] = meta["weight_mb_per_query"] / meta["mem_gbps"]
                row["floor_ms"] = max(row.get("compute_floor_ms", 0.0), row["memory_floor_ms"])
        if not args.no_peer:
            for name, td in (("peer_constrained", trie_dict), ("peer_free", None)):
                runners[name] = peer_runner(peer, enc, beams, td)
                if big:  # warm-up on one query of this setting (same code path, cheaper)
                    peer_runner(peer, enc[:1], beams, td)()
        times, outs = timed_interleaved(runners, repeats, warm_up=not big)
        for name, t in times.items():
            row[f"{name}_ms"] = 1e3 * t / batch
            if name.startswith("ours_serve"):
                continue
            if name.startswith("peer"):
                tok = outs[name].reshape(-1, len(LEVEL_SIZES)) - np.asarray(vocab.level_offsets)
                ok = (tok >= 0).all(1) & (tok < np.asarray(LEVEL_SIZES)).all(1)
                real = np.mean([bool(o) and tuple(c) in sid_set for o, c in zip(ok, tok.tolist())])
            else:
                real = np.mean(
                    [
                        tuple(c) in sid_set
                        for c in outs[name][0].reshape(-1, len(LEVEL_SIZES)).tolist()
                    ]
                )
            row[f"{name}_real_sid_rate"] = float(real)
        row["ours_overhead"] = row["ours_constrained_ms"] / row["ours_free_ms"]
        if args.serving:
            for serve in ("ours_serve_walk", "ours_serve_leaves"):
                row[f"{serve}_x_floor"] = row[f"{serve}_ms"] / row["floor_ms"]
            walk, leaf = outs["ours_serve_walk"][2], outs["ours_serve_leaves"][2]
            if walk != leaf:
                raise AssertionError("the leaf-id item lookup lists other items than the walk")
        if args.uncached:
            row["ours_uncached_overhead"] = (
                row["ours_uncached_constrained_ms"] / row["ours_uncached_free_ms"]
            )
        if not args.no_peer:
            row["peer_overhead"] = row["peer_constrained_ms"] / row["peer_free_ms"]
            row["speedup_vs_peer"] = row["peer_constrained_ms"] / row["ours_constrained_ms"]
            if args.uncached:
                row["uncached_speedup_vs_peer"] = (
                    row["peer_constrained_ms"] / row["ours_uncached_constrained_ms"]
                )
        row["load_avg"] = os.getloadavg()[0]
        rows.append(row)
        print(
            json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
            flush=True,
        )
        if args.out:
            with open(args.out, "w") as f:
                json.dump({"meta": meta, "rows": rows}, f, indent=1)

    print_table(rows, args.uncached, not args.no_peer, args.serving)


def print_table(rows, uncached: bool, peer: bool, serving: bool = False):
    cols = [
        ("setting", lambda r: f"b{r['batch']} x k{r['beams']}"),
        ("ours con ms/q", lambda r: f"{r['ours_constrained_ms']:.2f}"),
        ("ours free ms/q", lambda r: f"{r['ours_free_ms']:.2f}"),
        ("ours ovh", lambda r: f"{r['ours_overhead']:.3f}x"),
    ]
    if peer:
        cols += [
            ("peer con ms/q", lambda r: f"{r['peer_constrained_ms']:.2f}"),
            ("peer free ms/q", lambda r: f"{r['peer_free_ms']:.2f}"),
            ("peer ovh", lambda r: f"{r['peer_overhead']:.3f}x"),
            ("speedup (con)", lambda r: f"{r['speedup_vs_peer']:.2f}x"),
        ]
    if uncached:
        cols += [
            ("uncached con ms/q", lambda r: f"{r['ours_uncached_constrained_ms']:.2f}"),
            ("uncached free ms/q", lambda r: f"{r['ours_uncached_free_ms']:.2f}"),
            ("uncached ovh", lambda r: f"{r['ours_uncached_overhead']:.3f}x"),
        ]
        if peer:
            cols += [("uncached speedup", lambda r: f"{r['uncached_speedup_vs_peer']:.2f}x")]
    if serving:
        cols += [
            ("serve, walk ms/q", lambda r: f"{r['ours_serve_walk_ms']:.2f}"),
            ("serve, leaf ids ms/q", lambda r: f"{r['ours_serve_leaves_ms']:.2f}"),
            ("floor ms/q (compute, memory)", lambda r: f"{r['floor_ms']:.2f} "
             f"({r.get('compute_floor_ms', float('nan')):.2f}, {r['memory_floor_ms']:.2f})"),
            ("leaf ids / floor", lambda r: f"{r['ours_serve_leaves_x_floor']:.1f}x"),
        ]
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f(r) for _, f in cols) + " |")


if __name__ == "__main__":
    main()
