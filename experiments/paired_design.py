"""How small an effect a paired comparison resolves: two runs evaluated on the same test events
(experiments.evaluate keeps their per-event outcomes), the spread of their per-event
differences, the minimal detectable effect at this many events and seeds, and the events per
seed that a target effect needs (5% two-sided, 80% power; eval/paired.py).

    python -m experiments.paired_design --a=R/v1/seed0 --b=R/cot/seed0 --seeds=3 \
        --effect=0.005 --slice_effect=0.015

Prints one row per metric and slice and writes them to --out (JSON) when given.
"""
from __future__ import annotations


from absl import flags

from onesearch_jax import cli, fileio, quiet
from onesearch_jax import workdir as wd
from onesearch_jax.eval.paired import design_rows

_A = flags.DEFINE_string("a", None, "Evaluated run workdir (the baseline).", required=True)
_B = flags.DEFINE_string("b", None, "Evaluated run workdir, same test events.", required=True)
_TAG = flags.DEFINE_string("tag", "test", "Which evaluation (W/eval_events/<tag>.npz).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds the design would average over.")
_EFFECT = flags.DEFINE_float("effect", 0.005, "Target effect on whole-day metrics.")
_SLICE_EFFECT = flags.DEFINE_float("slice_effect", 0.015, "Target effect on the slices.")
_OUT = flags.DEFINE_string("out", None, "Write the rows here as JSON.")


def main(argv):
    del argv
    quiet.quiet_libraries()
    ids_a, a, slices = wd.load_eval_events(_A.value, _TAG.value)
    ids_b, b, _ = wd.load_eval_events(_B.value, _TAG.value)
    if len(ids_a) != len(ids_b) or not (ids_a == ids_b).all():
        raise ValueError(f"{_A.value} and {_B.value} were not evaluated on the same events "
                         f"(evaluate both with the same --max_events and split)")
    rows = design_rows(a, b, slices, _SEEDS.value, _EFFECT.value, _SLICE_EFFECT.value)
    print(f"{'metric':30s} {'events':>7s} {'b - a':>8s} {'sd':>7s} {'MDE 1 seed':>11s} "
          f"{'MDE x' + str(_SEEDS.value) + ' seeds':>14s} {'target':>7s} {'events/seed':>12s}")
    for r in rows:
        ok = "" if r["mde_events_only"] <= r["target"] else (
            "  (seeds needed)" if r["mde"] <= r["target"] else "  (more events needed)")
        print(f"{r['metric']:30s} {r['events']:7d} {r['mean_diff']:+8.4f} {r['sd_diff']:7.4f} "
              f"{r['mde_events_only']:11.4f} {r['mde']:14.4f} {r['target']:7.3f} "
              f"{r['events_needed']:12d}{ok}")
    if _OUT.value:
        fileio.write_json(_OUT.value, {"a": _A.value, "b": _B.value, "seeds": _SEEDS.value,
                                       "rows": rows})


if __name__ == "__main__":
    cli.run(main)
