"""Serving: a trained workdir answers text queries (`Searcher`), loaded once (`ModelBundle`).
Importing it loads no world simulator, SID fitter or training code."""
from onesearch_jax.serving.bundle import ModelBundle
from onesearch_jax.serving.searcher import Searcher

__all__ = ["ModelBundle", "Searcher"]
