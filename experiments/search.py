"""Answers a query from a trained workdir and prints the ranked product titles.

    python -m experiments.search --workdir=W --query "energy drink without caffeine" [--k=10]
"""
from absl import app, flags

from onesearch_jax.search import Searcher

_WORKDIR = flags.DEFINE_string("workdir", None, "Trained workdir.", required=True)
_QUERY = flags.DEFINE_multi_string("query", None, "Query text (repeatable).", required=True)
_K = flags.DEFINE_integer("k", 10, "Results per query.")


def main(argv):
    del argv
    searcher = Searcher.from_workdir(_WORKDIR.value)
    catalog = searcher.bundle.world.catalog
    index = searcher.bundle.world.product_index()
    for query, results in zip(_QUERY.value, searcher.search(_QUERY.value, _K.value)):
        print(f"query: {query!r}")
        if not results:
            print("  (no results)")
        for rank, pid in enumerate(results, 1):
            print(f"  {rank:2d}. {pid}  {catalog.titles[index[pid]]}")


if __name__ == "__main__":
    app.run(main)
