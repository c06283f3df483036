"""Evaluates a trained workdir: on the world's test day, or on a judgments file (real catalogs).

    python -m experiments.evaluate --workdir=W [--beam_size=64] [--noconstrained]
    python -m experiments.evaluate --workdir=W --judgments=FILE --out=M.json [--min_relevance=2.67]

World workdirs: writes `hr@K`-style metrics for the three target kinds (`rel_`, `click_`,
`order_`, with slices such as `/tail`, `/negation`) and `valid_sid_rate` into W/metrics.json.
With `--noconstrained` the names get the prefix `free/` (the unconstrained-decoding ablation).

Real-catalog workdirs (trained with configs/homedepot.py) and `--judgments` (query, product_uid,
relevance TSV): scores the generative model over the whole catalog, next to BM25 and their RRF
fusion (`--systems` adds dense MiniLM and the other fusions), and writes `recall@10`, `recall@100`, `ndcg@10`, `mrr@10`, `hr@10` (plus slices,
`bm25/...`, `rrf_bm25/...`, latencies and failure examples) to --out.
"""
import os

from absl import flags

from onesearch_jax import cli, fileio, quiet
from onesearch_jax import workdir as wd
from onesearch_jax.data.real_workdir import is_real_workdir
from onesearch_jax.pipeline.evaluate_run import (KEYWORD_INPUT_TASKS, evaluate_workdir,
                                                 metrics_prefix, reads_keyword_inputs)
from onesearch_jax.serving.bundle import load_train_config
from onesearch_jax.eval.world_eval import results_table, workdir_systems

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_MAX_EVENTS = flags.DEFINE_integer("max_events", 20_000, "Test events scored (a seeded sample).",
                                   lower_bound=1)
_BEAM = flags.DEFINE_integer("beam_size", None, "Beam width (default: the train config's eval "
                             "one).", lower_bound=1)
_CONSTRAINED = flags.DEFINE_boolean("constrained", True, "Constrain decoding to real items' SIDs.")
_KEYWORDS = flags.DEFINE_enum("keywords", "none", ["none", "teacher"],
                              "teacher: give the model keywords written for the test queries at "
                              "inference (the (T) evaluations); metrics get the prefix teacher/.")
_JUDGMENTS = flags.DEFINE_string("judgments", None, "Judgments TSV to score (real catalogs).")
_OUT = flags.DEFINE_string("out", None, "With --judgments: where to write the metrics JSON "
                           "(default W/judged_metrics.json).")
_MIN_REL = flags.DEFINE_float("min_relevance", 2.67, "With --judgments: target threshold.")
_MAX_QUERIES = flags.DEFINE_integer("max_queries", None, "With --judgments: a seeded sample.")
_LATENCY = flags.DEFINE_integer("latency_queries", 100, "Queries timed alone through the "
                                "serving path (median and p95 ms per query; 0 = none).")
_SYSTEMS = flags.DEFINE_list(
    "systems", ["generative", "bm25", "rrf_bm25"],
    "With --judgments: systems to score, from generative, adc (no model: the query embedding's "
    "ADC scores over the SIDs), adc_dense (ADC beams re-ranked by dense cosine), adc_hybrid "
    "(by cosine + BM25), bm25, rrf_bm25 (generative+BM25), dense (MiniLM), rrf_bm25_dense, "
    "hybrid (cosine + BM25 over the whole catalog), rrf_all. A prepared catalog "
    "that was never trained takes the systems without a model.")
_PRIOR = flags.DEFINE_float("prior_weight", None, "Weight of the query "
                            "embedding's ADC scores added to the generative model's logits "
                            "(default: the train config's eval.prior_weight; 0 turns it off).")
_RERANK = flags.DEFINE_enum("rerank", None, ["none", "dense", "rrf", "hybrid"],
                            "With --judgments: re-rank the generative beams' items by dense "
                            "cosine, by the RRF of beam order and cosine order, or by cosine + "
                            "BM25 (default: eval.rerank).")
_CELL = flags.DEFINE_integer("cell_level", None, "With --judgments: candidates are all items in "
                             "the beams' SID cells of this depth, 1..5 (default: "
                             "eval.cell_level; 0: the beams' own items).")
_BM25_W = flags.DEFINE_float("bm25_weight", None, "With --judgments: BM25's weight in the "
                             "hybrid scorer (cosine + w * BM25 / best BM25; default "
                             "eval.bm25_weight).")
_MESH = flags.DEFINE_list("mesh", [], "Serve sharded on a (data,fsdp,tensor) mesh of this "
                          "host's devices, e.g. 1,1,-1 (default: one device).")
_PRIOR_TRAFFIC = flags.DEFINE_list(
    "prior_by_traffic", None, "World workdirs: ADC prior weights of head,torso,tail,unseen "
    "queries of the training logs (default: the train config's eval.prior_by_traffic).")
_RERANK_TRAFFIC = flags.DEFINE_list(
    "rerank_by_traffic", None, "World workdirs: weights of the exact query-title cosine beside "
    "the beam score when ordering the beams' items, for head,torso,tail,unseen queries "
    "(0,0,0,0: beam order; default: the train config's eval.rerank_by_traffic).")
cli.require_numbers(_MESH, int)
cli.require_numbers(_PRIOR_TRAFFIC)
cli.require_numbers(_RERANK_TRAFFIC)
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "valid", "train"], "World workdirs: the "
                           "days scored (valid: for tuning serving options; train: the training "
                           "days' events; metrics under valid/ or train/).")
_EMB_CACHE = flags.DEFINE_string("embedding_cache", None, "With --judgments and dense systems: "
                                 "folder of cached title embeddings (default: the workdir's).")

NAMES = {"generative": "generative", "model_beam": "model beam search alone",
         "adc": "ADC over the SIDs, no training",
         "adc_dense": "ADC beams re-ranked by dense cosine",
         "adc_hybrid": "ADC beams re-ranked by cosine + BM25", "hybrid": "cosine + BM25",
         "bm25": "BM25", "rrf_bm25": "RRF(generative, BM25)",
         "dense": "dense cosine", "rrf_bm25_dense": "RRF(BM25, dense)",
         "rrf_all": "RRF(generative, BM25, dense)"}


def judged_table(metrics: dict, systems) -> str:
    cols = ("recall@10", "recall@100", "ndcg@10", "mrr@10", "hr@10", "latency_ms")
    lines = [f"| system | {' | '.join(cols)} |", "|---" * (len(cols) + 1) + "|"]
    for name in systems:
        prefix = "" if name == "generative" else name + "/"
        vals = " | ".join(f"{metrics[prefix + c]:.4f}" if prefix + c in metrics else "-"
                          for c in cols)  # no latency_ms with --latency_queries=0
        lines.append(f"| {NAMES[name]} | {vals} |")
    return "\n".join(lines)


def main(argv):
    del argv
    quiet.quiet_libraries()
    if _JUDGMENTS.value:
        from onesearch_jax.pipeline.real_eval import evaluate_real_workdir

        out = _OUT.value or os.path.join(_WORKDIR.value, "judged_metrics.json")
        fileio.check_output_file(out)  # before minutes of scoring, not after
        metrics = evaluate_real_workdir(
            _WORKDIR.value, _JUDGMENTS.value, min_relevance=_MIN_REL.value,
            beam_size=_BEAM.value, latency_queries=_LATENCY.value, max_queries=_MAX_QUERIES.value,
            systems=_SYSTEMS.value, embedding_cache=_EMB_CACHE.value,
            prior_weight=_PRIOR.value, rerank=_RERANK.value, cell_level=_CELL.value,
            bm25_weight=_BM25_W.value, mesh_shape=_MESH.value)
        metrics["config"] = {"judgments": os.path.abspath(_JUDGMENTS.value),
                             "min_relevance": _MIN_REL.value, "max_queries": _MAX_QUERIES.value,
                             "systems": list(_SYSTEMS.value), "prior_weight": _PRIOR.value,
                             "rerank": _RERANK.value, "beam_size": _BEAM.value,
                             "cell_level": _CELL.value, "bm25_weight": _BM25_W.value}
        fileio.write_json(out, metrics)
        print(judged_table(metrics, _SYSTEMS.value))
        rate = (f"; valid_sid_rate {metrics['valid_sid_rate']:.4f}"
                if "valid_sid_rate" in metrics else "")
        print(f"{metrics['num_queries']:.0f} queries ({metrics['num_queries_excluded']:.0f} "
              f"without a target left out){rate}; wrote {out}")
        return
    if is_real_workdir(_WORKDIR.value):
        raise ValueError(f"{_WORKDIR.value} is a real-catalog workdir: it is scored on judgments, "
                         "--judgments=FILE (query, product_uid, relevance TSV)")
    train_config = load_train_config(_WORKDIR.value)
    if _KEYWORDS.value == "teacher" and not reads_keyword_inputs(train_config):
        print("note: this run never trained on inputs with keywords (no "
              f"{' / '.join(KEYWORD_INPUT_TASKS)} task, no trained distillation teacher reading "
              "them): its teacher/ metrics measure keywords it has not learned to read")
    metrics = evaluate_workdir(_WORKDIR.value, max_events=_MAX_EVENTS.value, beam_size=_BEAM.value,
                               constrained=_CONSTRAINED.value, keywords=_KEYWORDS.value,
                               mesh_shape=_MESH.value, prior_weight=_PRIOR.value,
                               prior_by_traffic=_PRIOR_TRAFFIC.value,
                               rerank_by_traffic=_RERANK_TRAFFIC.value, split=_SPLIT.value,
                               latency_queries=_LATENCY.value)
    prefix = metrics_prefix(_SPLIT.value, _CONSTRAINED.value, _KEYWORDS.value)
    if _SPLIT.value == "test":
        print(results_table(wd.read_metrics(_WORKDIR.value),
                            workdir_systems(train_config)))
    else:  # the baselines are scored on the test day only
        print(results_table({k[len(prefix):]: v for k, v in metrics.items()
                             if k.startswith(prefix)},
                            systems=((f"OneSearch ({_SPLIT.value} day)", ""),)))
    print(f"valid_sid_rate {metrics[prefix + 'valid_sid_rate']:.4f} over "
          f"{metrics[prefix + 'click_count']:.0f} {_SPLIT.value} events with clicks")
    if prefix + "latency_ms" in metrics:
        print(f"served alone: {metrics[prefix + 'latency_ms']:.1f} ms per query (median of "
              f"{_LATENCY.value}; p95 {metrics[prefix + 'latency_ms_p95']:.1f})")


if __name__ == "__main__":
    cli.run(main)
