"""Answers a query from a trained workdir and prints the ranked product titles.

    python -m experiments.search --workdir=W --query "energy drink without caffeine" [--k=10]

Works for simulated-world and real-catalog (configs/homedepot.py) workdirs alike.
"""
from absl import flags

from onesearch_jax import cli, quiet
from onesearch_jax.serving import Searcher

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_QUERY = flags.DEFINE_multi_string("query", None, "Query text (repeatable).", required=True)
_K = flags.DEFINE_integer("k", 10, "Results per query.", lower_bound=1)
_MESH = flags.DEFINE_list("mesh", [], "Serve sharded on a (data,fsdp,tensor) mesh of this "
                          "host's devices, e.g. 1,1,-1 (default: one device).")
cli.require_numbers(_MESH, int)


def main(argv):
    del argv
    quiet.quiet_libraries()
    searcher = Searcher.from_workdir(_WORKDIR.value, mesh_shape=_MESH.value)
    title_of = dict(zip(searcher.bundle.product_ids, searcher.bundle.titles))
    for query, results in zip(_QUERY.value, searcher.search(_QUERY.value, _K.value)):
        print(f"query: {query!r}")
        if not results:
            print("  (no results)")
        for rank, pid in enumerate(results, 1):
            print(f"  {rank:2d}. {pid}  {title_of[pid]}")
        if 0 < len(results) < _K.value:
            print(f"  ({len(results)} of --k={_K.value}: all the items of the beams' SIDs)")


if __name__ == "__main__":
    cli.run(main)
