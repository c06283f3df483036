"""Keyword fusion: hand-computed cases, the ablation switch, and input validation."""
import numpy as np
import pytest

from onesearch_jax.sid.hash_embedder import HashEmbedder
from onesearch_jax.sid.keyword_fusion import embed_with_keywords, fuse_keywords

TEXT = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
KEYWORDS = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0]])


def test_hand_computed_fusion():
    # Row 0 owns keywords 0 and 2: mean (0.5, 0.5); 0.5*(1,0)+0.5*(0.5,0.5) = (0.75, 0.25).
    # Row 1 owns keyword 1: 0.5*(0,2)+0.5*(0,-1) = (0, 0.5) -> (0, 1).
    # Row 2 owns none: keeps (3,4)/5.
    fused = fuse_keywords(TEXT, KEYWORDS, np.array([0, 1, 0]))
    expected = np.array([[0.75, 0.25] / np.hypot(0.75, 0.25), [0.0, 1.0], [0.6, 0.8]])
    np.testing.assert_allclose(fused, expected, atol=1e-6)
    assert fused.dtype == np.float32


def test_disabled_is_text_only_and_ignores_keywords():
    fused = fuse_keywords(TEXT, None, None, enabled=False)
    np.testing.assert_allclose(fused, [[1, 0], [0, 1], [0.6, 0.8]], atol=1e-6)


def test_no_keywords_at_all_keeps_normalised_text():
    fused = fuse_keywords(TEXT, np.zeros((0, 2)), np.zeros((0,), np.int64))
    np.testing.assert_allclose(fused, [[1, 0], [0, 1], [0.6, 0.8]], atol=1e-6)


@pytest.mark.parametrize("text, keywords, owner, message", [
    (np.array([[1.0, 0.0], [np.nan, 1.0]]), KEYWORDS[:1], [0], "text_emb row 1 contains NaN"),
    (np.array([[1.0, 0.0], [0.0, 0.0]]), KEYWORDS[:1], [0], "text_emb row 1 is all zeros"),
    (TEXT, np.array([[1.0, 0.0], [np.inf, 0.0]]), [0, 1], "keyword_emb row 1 contains NaN"),
    (TEXT, np.array([[1.0, 0.0], [0.0, 0.0]]), [0, 1], "keyword_emb row 1 is all zeros"),
    (TEXT, np.ones((2, 3)), [0, 1], "dim mismatch"),
    (TEXT, KEYWORDS, [0, 1], "owner must have shape"),
    (TEXT, KEYWORDS, [0, 3, 1], r"owner\[1\] = 3"),
    (TEXT, KEYWORDS, [0.0, 1.0, 2.0], "integer"),
    (TEXT[0], KEYWORDS, [0, 0, 0], "2-D"),
    (np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0]]), [0], "fused embedding row 0 has zero norm"),
])
def test_bad_input_names_the_problem(text, keywords, owner, message):
    with pytest.raises(ValueError, match=message):
        fuse_keywords(text, keywords, np.asarray(owner))


def test_embed_with_keywords_matches_manual_fusion_and_embeds_each_keyword_once():
    class CountingEmbedder(HashEmbedder):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.calls = []

        def embed(self, texts):
            self.calls.append(list(texts))
            return super().embed(texts)

    embedder = CountingEmbedder(dim=16)
    texts = ["red running shoes", "kitchen sink", "usb cable"]
    keywords = [["shoes", "red"], ["sink", "shoes"], []]
    fused = embed_with_keywords(embedder, texts, keywords)
    assert embedder.calls == [texts, ["shoes", "red", "sink"]]

    plain = HashEmbedder(dim=16)
    manual = fuse_keywords(plain.embed(texts), plain.embed(["shoes", "red", "sink", "shoes"]),
                           np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(fused, manual, atol=1e-6)
    np.testing.assert_allclose(fused[2], plain.embed(["usb cable"])[0], atol=1e-6)

    text_only = embed_with_keywords(embedder, texts, keywords, enabled=False)
    np.testing.assert_allclose(text_only, plain.embed(texts), atol=1e-6)


def test_shared_keyword_pulls_texts_together():
    embedder = HashEmbedder(dim=64)
    texts = ["trail runner", "gym trainer"]
    before = embedder.embed(texts)
    after = embed_with_keywords(embedder, texts, [["sports shoes"], ["sports shoes"]])
    assert after[0] @ after[1] > before[0] @ before[1] + 0.2


def test_embed_with_keywords_rejects_bad_keyword_lists():
    embedder = HashEmbedder(dim=8)
    with pytest.raises(ValueError, match="2 texts but 1 keyword lists"):
        embed_with_keywords(embedder, ["a", "b"], [["x"]])
    with pytest.raises(ValueError, match=r"keywords\[1\] holds an empty"):
        embed_with_keywords(embedder, ["a", "b"], [["x"], ["  "]])
    with pytest.raises(ValueError, match=r"keywords\[0\] is a str"):
        embed_with_keywords(embedder, ["a"], ["xyz"])


def test_fuse_queries_moves_judged_items_toward_their_queries():
    from onesearch_jax.sid.keyword_fusion import fuse_queries
    items = np.array([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    queries = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 1.0]])
    # item 0 <- queries 0 and 2 (mean (0.5, 1)); item 1 <- none; item 2 <- query 1.
    out = fuse_queries(items, queries, np.array([0, 0, 2]), np.array([0, 2, 1]), weight=0.5)
    expect0 = np.array([0.75, 0.5]) / np.linalg.norm([0.75, 0.5])
    np.testing.assert_allclose(out[0], expect0, rtol=1e-6)
    np.testing.assert_allclose(out[1], [0.0, 1.0])
    expect2 = np.array([1.5, 1.5]) / np.linalg.norm([1.5, 1.5])
    np.testing.assert_allclose(out[2], expect2, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fuse_queries(items, queries, np.array([0]), np.array([0]), weight=1.5)
