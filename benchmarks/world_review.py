"""The world design review's numbers, recomputed for the current world code.

    python -m benchmarks.world_review --preset=tiny --seed=0 [--out=review.json]

Builds the world in a temporary workdir (or --workdir) and prints five markdown tables:
1. keyword precision/recall per query type: the build's scores (training-log queries only) and
   the LLM stand-in scored on ALL queries, plus the share of written keywords that are wrong;
2. text diversity (typos excluded): distinct need texts vs core need phrases, the share of
   negation queries with excluded components whose text names every one of them, and negation
   queries by kind (category exclusion / implicit cue / named component);
3. leaks: test queries with training keywords (must be 0), unseen/new test traffic per slice;
4. A/B gaming tricks (top item only, repeat best item, price sort within a tier) vs legacy,
   overall and for price-sensitive users (price_sensitivity > 0.6), with 95% bootstrap CIs;
5. the relevance oracle's headroom (the same oracle row).
Takes ~15 s wall on `tiny` (2 busy cores, one process, ~0.25 GiB peak): the build plus 8 simulated arms.
"""
from __future__ import annotations

import json
import tempfile
import time

import numpy as np
from absl import flags

from configs.world import get_config
from onesearch_jax import artifacts, cli
from onesearch_jax import workdir as wd
from onesearch_jax.world import keyword_fields, taxonomy
from onesearch_jax.pipeline.world_build import build_world_workdir
from onesearch_jax.world.keyword_llm import KeywordWriter
from onesearch_jax.world.keyword_score import flat_keywords, score_keywords
from onesearch_jax.world.simulator import legacy_search_fn, oracle_search_fn, simulate_traffic

_PRESET = flags.DEFINE_string("preset", "tiny", "World preset (with optional ,key=value overrides).")
_SEED = flags.DEFINE_integer("seed", 0, "World seed.")
_WORKDIR = flags.DEFINE_string("workdir", "", "Workdir to build in (default: a temporary one).")
_OUT = flags.DEFINE_string("out", "", "Write every number as flat JSON here (default: none).")
_EVENTS = flags.DEFINE_integer("num_events", 3000, "Simulated searches per A/B arm.")

LIFTS = ("ctr_lift", "page_ctr_lift", "orders_lift", "gmv_lift")


def keyword_review(world, metrics) -> dict:
    """Build-time scores (logged queries) and the writer scored on every query."""
    writer = KeywordWriter(world.config, world.catalog, world.users)
    rows = {t: kws for t in world.queries.texts if (kws := writer.write(t)) is not None}
    out = {k: v for k, v in metrics.items() if k.startswith("keywords/")}
    out.update(score_keywords(world, rows, range(len(world.queries)), prefix="keywords_all/"))
    counts = np.bincount(world.catalog.leaf, minlength=len(taxonomy.get_taxonomy().leaf_names))
    wrong = written = 0
    for i, text in enumerate(world.queries.texts):
        if text in rows:
            w = flat_keywords(rows[text])
            wrong += len(w - flat_keywords(keyword_fields.render_keywords(world.queries.intents[i], counts)))
            written += len(w)
    out["keywords_all/wrong_share"] = wrong / max(written, 1)
    return out


def diversity_review(world) -> dict:
    q, comps = world.queries, taxonomy.get_taxonomy().component_names
    clean = ~q.is_typo
    need = {q.texts[i] for i in np.flatnonzero(clean & (q.qtype == "need"))}
    phrases = {p for spec in taxonomy.FUNCTIONS.values() for p in spec["phrases"]}
    neg = np.flatnonzero(clean & (q.qtype == "negation"))
    named_all = [all(comps[c] in q.texts[i] for c in q.intents[i].exclude)
                 for i in neg if q.intents[i].exclude]
    kinds = {"category": 0, "implicit": 0, "named": 0}
    for i in neg:
        if q.intents[i].exclude_group >= 0:
            kinds["category"] += 1
        elif any(cue in q.texts[i] for cue in taxonomy.IMPLICIT_EXCLUSIONS):
            kinds["implicit"] += 1
        else:
            kinds["named"] += 1
    out = {"diversity/need_texts": len(need), "diversity/need_core_phrases": len(phrases),
           "diversity/negation_queries": len(neg),
           "diversity/negation_names_every_excluded": float(np.mean(named_all)) if named_all else float("nan")}
    out.update({f"diversity/negation/{k}": v for k, v in kinds.items()})
    return out


def leak_review(world, workdir, metrics) -> dict:
    out = {k: metrics[k] for k in ("leak/test_queries_with_training_keywords",
                                   "share/test_unseen_queries", "share/test_new_queries")}
    qids = artifacts.load_events(workdir, "test")["query_id"]
    unseen = artifacts.load_query_event_counts(workdir)["train"][qids] == 0
    for s in ("head", "torso", "tail"):
        m = world.queries.slice[qids] == s
        out[f"share/test_unseen_events/{s}"] = float(unseen[m].mean()) if m.any() else float("nan")
        out[f"share/test_events/{s}"] = float(m.mean())
    return out


def ab_review(world, num_events) -> dict:
    oracle, pids = oracle_search_fn(world), world.catalog.product_ids
    qid = {t: i for i, t in enumerate(world.queries.texts)}

    def price_sort(texts, users):
        return [[pids[i] for i in np.lexsort((-world.catalog.price, -world.relevance(qid[t])))[:10]]
                for t in texts]
    arms = {"oracle": oracle,
            "top item only": lambda t, u: [r[:1] for r in oracle(t, u)],
            "repeat best item x10": lambda t, u: [r[:1] * 10 for r in oracle(t, u)],
            "price sort within tier": price_sort}
    out = {}
    for name, fn in arms.items():
        r = simulate_traffic(fn, world, num_events=num_events, seed=0,
                             baseline_fn=legacy_search_fn(world), num_bootstrap=200,
                             user_filter=lambda users: world.users.price_sensitivity[users] > 0.6)
        out.update({f"ab/{name}/{k}": v for k, v in r.items() if "lift" in k or k.startswith("num_events")})
    return out


def _pct(r, key, suffix=""):
    lo, hi = r[f"{key}_ci_low{suffix}"], r[f"{key}_ci_high{suffix}"]
    return f"{100 * r[key + suffix]:+.1f}% [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def print_tables(r: dict) -> None:
    qtypes = sorted({k.split("/")[2] for k in r if k.startswith("keywords/precision/")}
                    | {k.split("/")[2] for k in r if k.startswith("keywords_all/precision/")})
    print("## 1. Keywords (precision / recall)\n\n| query type | logged P | logged R | all P | all R |\n|---|---|---|---|---|")
    for t in [""] + qtypes:
        sfx = f"/{t}" if t else ""
        cells = [r.get(f"{p}/{m}{sfx}", float("nan")) for p in ("keywords", "keywords_all")
                 for m in ("precision", "recall")]
        print(f"| {t or 'all'} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print(f"\ncoverage: logged {r['keywords/coverage']:.3f}, all {r['keywords_all/coverage']:.3f}; "
          f"wrong share of written keywords (all queries): {r['keywords_all/wrong_share']:.3f}")
    print("\n## 2. Text diversity\n\n| measure | value |\n|---|---|")
    for k in sorted(k for k in r if k.startswith("diversity/")):
        v = r[k]
        print(f"| {k[10:]} | {v:.3f} |" if isinstance(v, float) else f"| {k[10:]} | {v} |")
    print("\n## 3. Leaks and unseen test traffic\n\n| measure | value |\n|---|---|")
    for k in [k for k in r if k.startswith(("leak/", "share/"))]:
        print(f"| {k} | {r[k]:.3f} |")
    arms = list(dict.fromkeys(k.split("/")[1] for k in r if k.startswith("ab/")))
    head = "| arm | " + " | ".join(LIFTS) + " | orders_lift/users | gmv_lift/users |\n|---|" + "---|" * 6
    for title, rows in (("4. A/B gaming tricks vs legacy", arms[1:]), ("5. Oracle headroom", arms[:1])):
        print(f"\n## {title} (lift [95% CI])\n\n{head}")
        for arm in rows:
            a = {k.split("/", 2)[2]: v for k, v in r.items() if k.startswith(f"ab/{arm}/")}
            cells = [_pct(a, k) for k in LIFTS] + [_pct(a, k, "/users") for k in ("orders_lift", "gmv_lift")]
            print(f"| {arm} | " + " | ".join(cells) + " |")
    a = {k.split("/", 2)[2]: v for k, v in r.items() if k.startswith(f"ab/{arms[0]}/")}
    print(f"\nsearches per arm: {a['num_events']}, price-sensitive users: {a['num_events/users']}")


def main(argv):
    del argv
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = _WORKDIR.value or tmp
        world = build_world_workdir(get_config(_PRESET.value + f",seed={_SEED.value}"), workdir)
        metrics = wd.read_metrics(workdir)
        result = {"preset": _PRESET.value, "seed": _SEED.value}
        result.update(keyword_review(world, metrics))
        result.update(diversity_review(world))
        result.update(leak_review(world, workdir, metrics))
        result.update(ab_review(world, _EVENTS.value))
    result["seconds"] = round(time.perf_counter() - start, 1)
    print_tables(result)
    print(f"\nwall time: {result['seconds']} s")
    if _OUT.value:
        with open(_OUT.value, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    cli.run(main)
