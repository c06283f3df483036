"""Evaluates a trained workdir on the world's test day and prints it beside the baselines.

    python -m experiments.evaluate --workdir=W [--beam_size=64] [--noconstrained]

Writes `hr@K`-style metrics for the three target kinds (`rel_`, `click_`, `order_`, with slices
such as `/tail`, `/negation`) and `valid_sid_rate` into W/metrics.json. With `--noconstrained`
the names get the prefix `free/` (the unconstrained-decoding ablation).
"""
from absl import app, flags

from onesearch_jax import workdir as wd
from onesearch_jax.eval.evaluate_run import evaluate_workdir
from onesearch_jax.eval.world_eval import results_table

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_MAX_EVENTS = flags.DEFINE_integer("max_events", 20_000, "Test events scored (a seeded sample).")
_BEAM = flags.DEFINE_integer("beam_size", None, "Beam width (default: the train config's eval one).")
_CONSTRAINED = flags.DEFINE_boolean("constrained", True, "Constrain decoding to real items' SIDs.")


def main(argv):
    del argv
    metrics = evaluate_workdir(_WORKDIR.value, max_events=_MAX_EVENTS.value, beam_size=_BEAM.value,
                               constrained=_CONSTRAINED.value)
    print(results_table(wd.read_metrics(_WORKDIR.value)))
    prefix = "" if _CONSTRAINED.value else "free/"
    print(f"valid_sid_rate {metrics[prefix + 'valid_sid_rate']:.4f} over "
          f"{metrics[prefix + 'click_count']:.0f} test events with clicks")


if __name__ == "__main__":
    app.run(main)
