"""KHQE semantic IDs: our JAX residual k-means + OPQ vs faiss-cpu, side by side on the same data.

    python benchmarks/sid_bench.py --num_items 100000            # paper sizes 4096-1024-512 + 2x256
    python benchmarks/sid_bench.py --num_items 20000 --sizes 256,64,32 --opq_codes 64
    python benchmarks/sid_bench.py --data path/to/embeddings.npy --skip_faiss

Both sides get the same L2-normalised float32 embeddings and the same recipe: global k-means for the
first levels (niter = --iters, max 256 points per centroid), an independent k-means per level-2
code for the last level (local codes), then OPQ (M x K codes) on the final residual (faiss:
OPQMatrix + ProductQuantizer). Reports wall time per stage, ICR, CUR per level, collision rate and
reconstruction error. faiss-cpu is a benchmark-only dependency (`pip install faiss-cpu`).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from onesearch_jax.sid import kmeans
from onesearch_jax.sid.assign import assign, sid_metrics
from onesearch_jax.sid.codebooks import KHQEConfig
from onesearch_jax.sid.opq import fit_opq
from onesearch_jax.sid.codebooks import assign_per_parent
from onesearch_jax.sid.rq_kmeans import fit_per_parent


def synthetic_embeddings(n: int, dim: int, seed: int = 0, intrinsic_dim: int = 48) -> np.ndarray:
    """Hierarchical Gaussian mixture (topics > sub-topics > items), L2-normalised float32.

    Item-level variation lives in a random `intrinsic_dim`-dimensional subspace with a decaying
    spectrum, as in text embeddings; isotropic 384-d noise would make every k-means degenerate.
    """
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(max(8, n // 2000), dim)).astype(np.float32)
    subs = rng.normal(size=(max(32, n // 50), dim)).astype(np.float32)
    basis = (rng.normal(size=(intrinsic_dim, dim))
             * (np.arange(1, intrinsic_dim + 1) ** -0.5)[:, None]).astype(np.float32)
    sub_topic = rng.integers(0, len(topics), len(subs))
    sub = rng.integers(0, len(subs), n)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        z = rng.normal(size=(e - s, intrinsic_dim)).astype(np.float32)
        x[s:e] = topics[sub_topic[sub[s:e]]] + 0.7 * subs[sub[s:e]] + 0.6 * z @ basis
        x[s:e] += 0.05 * rng.normal(size=(e - s, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


class Timer:
    def __init__(self):
        self.times: dict[str, float] = {}

    def __call__(self, name):
        timer = self

        class _Block:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[name] = round(time.perf_counter() - self.t, 2)
                print(f"  {name}: {timer.times[name]:.1f}s", flush=True)
        return _Block()


def run_ours(x, cfg: KHQEConfig):
    t = Timer()
    residual = x.copy()
    codes = []
    for level, k in enumerate(cfg.level_sizes[:-1]):
        with t(f"level{level + 1}_kmeans"):
            c = kmeans.fit_kmeans(residual, k, iters=cfg.iters, seed=cfg.seed + level,
                                  max_points_per_centroid=cfg.max_points_per_centroid)
            code, _ = assign(residual, c)
            residual -= c[code]
        codes.append(code)
    with t(f"level{len(cfg.level_sizes)}_per_parent"):
        pc, pv = fit_per_parent(residual, codes[-1], num_parents=cfg.level_sizes[-2],
                                k=cfg.level_sizes[-1], iters=cfg.iters, seed=cfg.seed + 9,
                                max_points_per_centroid=cfg.max_points_per_centroid)
        code = assign_per_parent(residual, codes[-1], pc, pv)
        residual -= pc[codes[-1], code]
    codes.append(code)
    with t("opq"):
        opq = fit_opq(residual, subspaces=cfg.opq_subspaces, codes=cfg.opq_codes,
                      iters=cfg.opq_iters, seed=cfg.seed + 101)
        suffix = opq.encode(residual)
        residual_hat = opq.decode(suffix)
    codes = np.concatenate([np.stack(codes, 1), suffix], axis=1).astype(np.int32)
    t.times["total"] = round(sum(t.times.values()), 2)
    return codes, float(np.mean(np.sum((residual - residual_hat) ** 2, axis=1))), t.times


def run_faiss(x, cfg: KHQEConfig):
    import faiss
    t = Timer()
    n, dim = x.shape
    residual = x.copy()
    codes = []
    for level, k in enumerate(cfg.level_sizes[:-1]):
        with t(f"level{level + 1}_kmeans"):
            km = faiss.Kmeans(dim, k, niter=cfg.iters, seed=cfg.seed + level + 1,
                              max_points_per_centroid=cfg.max_points_per_centroid)
            km.train(residual)
            _, code = km.index.search(residual, 1)
            code = code[:, 0]
            residual -= km.centroids[code]
        codes.append(code)
    k_last = cfg.level_sizes[-1]
    with t(f"level{len(cfg.level_sizes)}_per_parent"):
        code = np.zeros((n,), np.int64)
        parents = codes[-1]
        order = np.argsort(parents, kind="stable")
        uniq, starts, counts = np.unique(parents[order], return_index=True, return_counts=True)
        for p, s, c in zip(uniq, starts, counts):
            rows = order[s:s + c]
            k = min(k_last, len(rows))
            sub = np.ascontiguousarray(residual[rows])
            km = faiss.Kmeans(dim, k, niter=cfg.iters, seed=cfg.seed + int(p) + 1,
                              max_points_per_centroid=cfg.max_points_per_centroid,
                              min_points_per_centroid=1)
            km.train(sub)
            _, local = km.index.search(sub, 1)
            code[rows] = local[:, 0]
            residual[rows] -= km.centroids[local[:, 0]]
    codes.append(code)
    with t("opq"):
        opq = faiss.OPQMatrix(dim, cfg.opq_subspaces)
        opq.niter = cfg.opq_iters
        opq.train(residual)
        rotated = opq.apply(residual)
        pq = faiss.ProductQuantizer(dim, cfg.opq_subspaces, int(np.log2(cfg.opq_codes)))
        pq.train(rotated)
        # Unpacked codes straight from the sub-codebooks (PQ bytes are bit-packed when K < 256).
        books = faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)
        d_sub = dim // cfg.opq_subspaces
        suffix, parts = [], []
        for m in range(pq.M):
            index = faiss.IndexFlatL2(d_sub)
            index.add(books[m])
            _, c = index.search(np.ascontiguousarray(rotated[:, m * d_sub:(m + 1) * d_sub]), 1)
            suffix.append(c[:, 0])
            parts.append(books[m][c[:, 0]])
        suffix = np.stack(suffix, 1)
        residual_hat = opq.reverse_transform(np.ascontiguousarray(np.concatenate(parts, 1)))
    codes = np.concatenate([np.stack(codes, 1), suffix], axis=1).astype(np.int32)
    t.times["total"] = round(sum(t.times.values()), 2)
    return codes, float(np.mean(np.sum((residual - residual_hat) ** 2, axis=1))), t.times


def quality(codes, cfg: KHQEConfig, opq_residual_mse: float) -> dict:
    sizes = tuple(cfg.level_sizes) + (cfg.opq_codes,) * cfg.opq_subspaces
    cur = sid_metrics.codebook_utilization(codes, sizes, per_parent_levels=(len(cfg.level_sizes) - 1,))
    n_prefix = len(cfg.level_sizes)
    return {"icr": round(sid_metrics.icr(codes), 4),
            "icr_prefix_only": round(sid_metrics.icr(codes[:, :n_prefix]), 4),
            "collision_rate": round(sid_metrics.collision_rate(codes), 4),
            "cur": [round(float(c), 4) for c in cur],
            "final_residual_mse_after_opq": round(opq_residual_mse, 5)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num_items", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--data", default="synthetic", help="'synthetic' or a path to an (N, D) .npy")
    ap.add_argument("--sizes", default="4096,1024,512")
    ap.add_argument("--opq_subspaces", type=int, default=2)
    ap.add_argument("--opq_codes", type=int, default=256)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--opq_iters", type=int, default=10)
    ap.add_argument("--skip_faiss", action="store_true")
    ap.add_argument("--skip_ours", action="store_true")
    ap.add_argument("--out", default="", help="optional JSON output path")
    args = ap.parse_args()

    if args.data == "synthetic":
        x = synthetic_embeddings(args.num_items, args.dim)
    else:
        x = np.load(args.data).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    cfg = KHQEConfig(level_sizes=tuple(int(s) for s in args.sizes.split(",")),
                     opq_subspaces=args.opq_subspaces, opq_codes=args.opq_codes,
                     iters=args.iters, opq_iters=args.opq_iters)
    import jax
    print(f"data {x.shape}, sizes {cfg.level_sizes} per_parent + OPQ {cfg.opq_subspaces}x"
          f"{cfg.opq_codes}, iters {cfg.iters}, jax backend {jax.default_backend()}", flush=True)
    report = {"num_items": int(x.shape[0]), "dim": int(x.shape[1]), "config": cfg.to_dict()}
    if not args.skip_ours:
        print("ours (JAX):", flush=True)
        codes, mse, times = run_ours(x, cfg)
        report["ours"] = {"seconds": times, **quality(codes, cfg, mse)}
        print(json.dumps(report["ours"]), flush=True)
    if not args.skip_faiss:
        print("faiss-cpu:", flush=True)
        codes, mse, times = run_faiss(x, cfg)
        report["faiss"] = {"seconds": times, **quality(codes, cfg, mse)}
        print(json.dumps(report["faiss"]), flush=True)
    if "ours" in report and "faiss" in report:
        report["time_ratio_ours_over_faiss"] = round(
            report["ours"]["seconds"]["total"] / report["faiss"]["seconds"]["total"], 3)
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
