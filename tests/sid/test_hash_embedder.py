"""HashEmbedder: deterministic, similarity-preserving, and strict about bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from onesearch_jax.sid.embedder import TextEmbedder, make_embedder
from onesearch_jax.sid.hash_embedder import HashEmbedder, text_features


def test_features_are_words_and_boundary_trigrams():
    assert text_features("Red  SHOE!") == [
        ("w", "red"), ("c", "<re"), ("c", "red"), ("c", "ed>"),
        ("w", "shoe"), ("c", "<sh"), ("c", "sho"), ("c", "hoe"), ("c", "oe>")]
    assert text_features("  ,.- ") == []


def test_output_is_unit_float32_of_requested_dim():
    vectors = HashEmbedder(dim=32).embed(["red shoes", "blue phone case", "x"])
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_single_word_equals_hand_computed_sum():
    embedder = HashEmbedder(dim=16, trigram_weight=0.5)
    expected = (embedder.feature_vector("w", "ab")
                + 0.5 * embedder.feature_vector("c", "<ab")
                + 0.5 * embedder.feature_vector("c", "ab>"))
    np.testing.assert_allclose(embedder.embed(["AB"])[0], expected / np.linalg.norm(expected),
                               rtol=1e-6)


def test_similar_texts_are_closer_than_unrelated():
    a, b, c, d = HashEmbedder(dim=64).embed(
        ["mens red running shoes", "red running shoe for men",
         "stainless steel kitchen sink", "wireless bluetooth headphones"])
    assert a @ b > 0.5
    assert a @ b > max(a @ c, a @ d) + 0.3


def test_word_order_and_case_do_not_matter():
    a, b = HashEmbedder().embed(["Red Shoes", "shoes red"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_seed_changes_vectors_and_same_seed_repeats():
    text = ["garden hose 50 ft"]
    np.testing.assert_array_equal(HashEmbedder(seed=3).embed(text), HashEmbedder(seed=3).embed(text))
    assert not np.allclose(HashEmbedder(seed=3).embed(text), HashEmbedder(seed=4).embed(text))


def test_deterministic_across_processes_despite_hash_randomization():
    code = ("from onesearch_jax.sid.hash_embedder import HashEmbedder;"
            "print(HashEmbedder(dim=8).embed(['usb c charger'])[0].tolist())")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(runs) == 1
    here = HashEmbedder(dim=8).embed(["usb c charger"])[0]
    np.testing.assert_allclose(eval(runs.pop()), here, rtol=1e-6)


def test_bad_input_raises_value_error():
    embedder = HashEmbedder()
    with pytest.raises(ValueError, match="text 1"):
        embedder.embed(["ok", " -- "])
    with pytest.raises(ValueError, match="single str"):
        embedder.embed("red shoes")
    with pytest.raises(ValueError, match="text 0"):
        embedder.embed([3])
    with pytest.raises(ValueError, match="dim"):
        HashEmbedder(dim=0)
    assert embedder.embed([]).shape == (0, 64)


def test_registry_builds_hash_and_rejects_unknown_names():
    embedder = make_embedder("hash", dim=12)
    assert isinstance(embedder, TextEmbedder) and embedder.dim == 12
    with pytest.raises(ValueError, match=r"unknown embedder 'bert'.*\['hash', 'minilm'\]"):
        make_embedder("bert")


def test_embed_cached_prints_one_progress_line_over_its_chunks_and_caches(tmp_path, monkeypatch,
                                                                          capsys):
    from onesearch_jax.sid import embedding_cache
    embedder = HashEmbedder(dim=12)
    texts = ["red shoes", "blue sink", "usb cable", "oak table", "wool socks"]
    monkeypatch.setattr(embedding_cache, "PROGRESS_MIN_TEXTS", 3)
    vectors = embedding_cache.embed_cached(texts, "hash", str(tmp_path), embedder.embed, chunk=2)
    np.testing.assert_array_equal(vectors, embedder.embed(texts))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("embedding (hash): 5/5 (100%)")
    again = embedding_cache.embed_cached(texts, "hash", str(tmp_path), embedder.embed, chunk=2)
    np.testing.assert_array_equal(again, vectors)
    assert capsys.readouterr().err == ""  # read from the cache
    embedding_cache.embed_cached(texts[:2], "hash", str(tmp_path), embedder.embed)
    assert capsys.readouterr().err == ""  # a short list says nothing
